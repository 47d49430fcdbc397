"""The built-in archive: deterministic bytes, valid contract, disjoint splits, heavy-tailed groups."""

from __future__ import annotations

import hashlib
import io
import os
from collections import Counter

import numpy as np
from PIL import Image

from clippings import cli
from clippings.archive import read_archive
from clippings.synth import SPLITS, base_image, generate, plan, reprint_caption, story_facts, story_facts_for


def _hashes(root) -> dict[str, str]:
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            path = os.path.join(dirpath, f)
            out[os.path.relpath(path, root)] = hashlib.sha256(open(path, "rb").read()).hexdigest()
    return out


def test_same_seed_gives_byte_identical_files(synth_dir, tmp_path):
    generate(str(tmp_path), stories=60, seed=1)
    first, second = _hashes(synth_dir), _hashes(tmp_path)
    assert sorted(first) == [f"{s}/part-00000.parquet" for s in sorted(SPLITS)]
    assert first == second


def test_a_different_seed_gives_different_data(tmp_path):
    generate(str(tmp_path / "a"), stories=8, seed=2)
    generate(str(tmp_path / "b"), stories=8, seed=3)
    a, b = read_archive(str(tmp_path / "a" / "unlabelled")), read_archive(str(tmp_path / "b" / "unlabelled"))
    assert a.column("caption").to_pylist() != b.column("caption").to_pylist()


def test_splits_validate_are_disjoint_and_labelled(synth_dir):
    tables = {s: read_archive(str(synth_dir / s), require_labels=s != "unlabelled") for s in SPLITS}
    assert tables["unlabelled"].column("label").null_count == tables["unlabelled"].num_rows
    ids = [i for t in tables.values() for i in t.column("clipping_id").to_pylist()]
    assert len(ids) == len(set(ids))
    labels = {s: set(tables[s].column("label").to_pylist()) for s in ("train", "val", "test")}
    assert not labels["train"] & labels["val"] and not labels["train"] & labels["test"]
    assert not labels["val"] & labels["test"]
    for s in ("train", "val", "test"):
        t = tables[s]
        assert t.num_rows > 0 and all(t.column("caption").to_pylist())
        assert t.column("image_path").null_count == t.num_rows
        for data in t.column("image").to_pylist()[:5]:
            img = Image.open(io.BytesIO(data))
            assert 96 <= max(img.size) <= 128


def test_group_sizes_are_heavy_tailed():
    sizes = np.array([s.size for s in plan(2000, seed=0)])
    assert 0.3 < (sizes == 1).mean() < 0.5
    multi = sizes[sizes > 1]
    assert ((multi <= 10).mean()) > 0.8
    assert (sizes >= 30).sum() >= 5
    small = plan(60, seed=1)
    assert max(s.size for s in small) >= 30 and Counter(s.split for s in small)["test"] == 9


def test_confounders_are_present():
    stories = plan(2000, seed=0)
    reused = [s for s in stories if s.photo_of != s.index]
    assert len(reused) > 50 and all(stories[s.photo_of].split == s.split for s in reused)
    assert sum(s.twin_of >= 0 for s in stories) > 20
    assert sum(s.follow_of >= 0 for s in stories) > 100
    assert sum(s.formulaic for s in stories) > 400


def test_names_and_places_are_combinatorially_rich():
    facts = [story_facts(np.random.default_rng([0, i])) for i in range(3000)]
    people = {(f["first"], f["last"]) for f in facts}
    assert len({f["last"] for f in facts}) > 1500 and len(people) > 2900
    assert len({(f["city"], f["state"]) for f in facts}) > 1500 and len({f["org"] for f in facts}) > 1000
    assert Counter(f["last"] for f in facts).most_common(1)[0][1] < 30  # common names exist, none dominates
    assert story_facts(np.random.default_rng([0, 7])) == facts[7]


def test_a_reused_photo_is_its_source_photo_and_twins_nearly_match():
    stories = plan(2000, seed=0)

    def pixels(s):
        return np.asarray(base_image(s, stories, 0, story_facts_for(s, 0)), dtype=np.float32)

    reused = [s for s in stories if s.photo_of != s.index and s.kind == "portrait"]
    assert any(stories[s.photo_of].twin_of >= 0 for s in reused)  # the case that once drew a different face
    for s in [r for r in reused if stories[r.photo_of].twin_of >= 0][:3] + reused[:3]:
        assert np.array_equal(pixels(s), pixels(stories[s.photo_of]))
    twins = [s for s in stories if s.twin_of >= 0][:12]
    portraits = [s for s in stories if s.kind == "portrait" and s.photo_of == s.index][:13]
    twin_d = [np.abs(pixels(s) - pixels(stories[s.twin_of])).mean() for s in twins]
    other_d = [np.abs(pixels(a) - pixels(b)).mean() for a, b in zip(portraits[:-1], portraits[1:], strict=True)]
    assert min(twin_d) > 0 and np.median(twin_d) < 0.5 * np.median(other_d)


def test_reprints_have_ocr_noise_but_keep_the_story():
    facts = story_facts(np.random.default_rng(0))
    text = "The Atomic Energy Commission announced plans in Chicago on Monday for the new hospital."
    captions = {reprint_caption(text, facts, np.random.default_rng(k)) for k in range(40)}
    assert len(captions) > 20
    assert any(("rn" in c and "rn" not in text) or "0" in c or "1" in c for c in captions)


def test_synth_rejects_too_few_stories(tmp_path, capsys):
    assert cli.main(["synth", "--out", str(tmp_path), "--stories", "3"]) == 2
    assert capsys.readouterr().err.strip() == (
        "clippings synth: error: The 'stories' parameter of synth must be an int in the range [4, inf). "
        "Got 3 instead."
    )
