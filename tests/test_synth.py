"""The built-in archive: deterministic bytes, valid contract, disjoint splits, heavy-tailed groups; the mild
archive unchanged and the hard one measurably harder."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from clippings import cli
from clippings.archive import read_archive
from clippings.errors import BadInput
from clippings.synth import (
    HARD,
    SPLITS,
    base_image,
    difficulty_of,
    generate,
    plan,
    reprint_caption,
    story_facts,
    story_facts_for,
    story_rows,
)
from clippings.synth.captions import pick, story_text, town
from clippings.synth.ocr import ocr_caption
from clippings.synth.scan import scan
from clippings.synth.words import MASTHEADS


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


def _edit_distance(a: str, b: str) -> int:
    """Levenshtein distance, one row of the dynamic programme at a time (numpy)."""
    codes = np.array([ord(c) for c in b])
    steps = np.arange(len(b) + 1)
    prev = steps.copy()
    for i, ch in enumerate(a):
        cur = np.empty_like(prev)
        cur[0] = i + 1
        cur[1:] = np.minimum(prev[1:] + 1, prev[:-1] + (codes != ord(ch)))
        prev = np.minimum.accumulate(cur - steps) + steps  # insertions: cur[j] = min(cur[j], cur[j-1] + 1)
    return int(prev[-1])


def test_edit_distance_reference():
    assert _edit_distance("kitten", "sitting") == 3 and _edit_distance("", "abc") == 3
    assert _edit_distance("flaw", "lawn") == 2 and _edit_distance("same", "same") == 0


def test_mild_rows_are_the_original_scan_and_ocr(tmp_path):
    """The mild archive is the one the demo and the tests were built on: each row is the original light scan
    and OCR drawn in the original order (the reference below is story_rows as it was), and the default."""
    stories = plan(40, seed=3)
    for story in stories[:12]:
        facts = story_facts_for(story, 3)
        text = story_text(story.kind, story.formulaic, facts, np.random.default_rng([3, story.index, 0]))
        base = base_image(story, stories, 3, facts)
        for k, row in enumerate(story_rows(story, stories, 3, difficulty="mild")):
            r = np.random.default_rng([3, story.index, 1 + k])
            town(r)
            r.integers(0, 12)
            assert row["image"] == scan(base, r)
            assert row["caption"] == reprint_caption(text, facts, r)
            assert row["source"].endswith(pick(r, MASTHEADS)) and row["page"] == str(int(r.integers(1, 25)))
    generate(str(tmp_path / "default"), stories=8, seed=4)
    generate(str(tmp_path / "mild"), stories=8, seed=4, difficulty="mild")
    assert _hashes(tmp_path / "default") == _hashes(tmp_path / "mild")


def test_hard_archive_is_deterministic_and_the_cli_default(tmp_path, capsys):
    generate(str(tmp_path / "a"), stories=12, seed=5, difficulty="hard")
    generate(str(tmp_path / "b"), stories=12, seed=5, difficulty=HARD, workers=2)
    assert cli.main(["synth", "--out", str(tmp_path / "cli"), "--stories", "12", "--seed", "5"]) == 0
    generate(str(tmp_path / "mild"), stories=12, seed=5, difficulty="mild")
    hard = _hashes(tmp_path / "a")
    from_cli = {k: v for k, v in _hashes(tmp_path / "cli").items() if k.endswith(".parquet")}  # not its log
    assert hard == _hashes(tmp_path / "b") == from_cli
    assert set(hard.values()).isdisjoint(_hashes(tmp_path / "mild").values())
    for name in SPLITS:
        table = read_archive(str(tmp_path / "a" / name), require_labels=name != "unlabelled")
        for data in table.column("image").to_pylist():
            assert 96 <= max(Image.open(io.BytesIO(data)).size) <= 128
    out = capsys.readouterr()
    assert "12 stories (hard)" in out.out + out.err


def test_an_unknown_difficulty_is_refused(tmp_path, capsys):
    with pytest.raises(BadInput, match="'difficulty' parameter of synth"):
        difficulty_of("brutal")
    assert cli.main(["synth", "--out", str(tmp_path), "--difficulty", "brutal"]) == 2
    assert "brutal" in capsys.readouterr().err


def test_hard_ocr_reads_at_5_to_15_percent_character_error():
    """The OCR alone (the paper's edits, headlines and line faults off): characters misread at the CER drawn."""
    ocr_only = dataclasses.replace(
        HARD.ocr, hyphenate_p=0.0, line_drop_p=0.0, line_merge_p=0.0, line_break_p=0.0, neighbour_p=0.0,
        rewrite_p=0.0, sentence_drop_p=0.0, reword_p=0.0, truncate_p=0.0, wire_headline_p=0.0, own_headline_p=0.0,
        dateline_p=0.0, credit_p=0.0)
    facts = story_facts(np.random.default_rng(1))
    text = ("The Atomic Energy Commission announced plans in Chicago on Monday for the new hospital. Officials "
            "said the plant would cost about 150 million dollars and employ 2,000 men by next spring.")
    cers = np.array([_edit_distance(ocr_caption(text, facts, np.random.default_rng([9, k]), ocr_only, "map"), text)
                     / len(text) for k in range(40)])
    assert 0.07 < cers.mean() < 0.13 and cers.min() > 0 and cers.max() < 0.25
    assert ((cers > 0.03) & (cers < 0.2)).mean() >= 0.85  # the rate drawn per reprint; its lines vary around it


def _thumbnail(data: bytes) -> np.ndarray:
    """Pixel cosine's 16 px grey thumbnail, mean-centred, unit norm (clippings.pixel_cosine, without torch)."""
    v = np.asarray(Image.open(io.BytesIO(data)).convert("L").resize((16, 16), Image.Resampling.BOX), np.float32)
    v = v.reshape(-1) - v.mean()
    return v / max(float(np.linalg.norm(v)), 1e-6)


def test_hard_reprints_are_measurably_harder_than_mild():
    """Against the same stories: captions further from the wire text, reprints of one photo less alike."""
    stories = plan(300, seed=0)
    groups = [s for s in stories if 3 <= s.size <= 6 and s.kind != "headline"][:8]
    cer, cosine = {}, {}
    for level in ("mild", "hard"):
        errors, sims = [], []
        for story in groups:
            facts = story_facts_for(story, 0)
            text = story_text(story.kind, story.formulaic, facts, np.random.default_rng([0, story.index, 0]))
            rows = list(story_rows(story, stories, 0, difficulty=level))
            errors += [_edit_distance(row["caption"], text) / len(text) for row in rows]
            thumbs = np.stack([_thumbnail(row["image"]) for row in rows])
            gram = thumbs @ thumbs.T
            sims.append(gram[np.triu_indices(len(rows), 1)].mean())
        cer[level], cosine[level] = float(np.mean(errors)), float(np.mean(sims))
    assert cer["hard"] > cer["mild"] + 0.08, cer
    assert cosine["hard"] < cosine["mild"] - 0.05, cosine
