"""`clippings mine`: every input id accounted for, groups whole in one split, mined pairs precise against the
hidden labels of the built-in archive, output a valid labelled archive, one-line refusals."""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clippings import cli
from clippings.archive import read_archive
from clippings.errors import BadInput
from clippings.evaluate import pairwise_prf
from clippings.mine import LEFTOVERS, MINE_JSON, Mined, char_ngram_sets, split_val
from clippings.storage import read_dataset, write_dataset


@pytest.fixture(scope="module")
def hidden(tmp_path_factory):
    """The built-in archive's train split (150 stories, seed 2) without its labels: (folder, id -> label)."""
    from clippings.synth import generate

    root = tmp_path_factory.mktemp("mine_input")
    paths = generate(str(root / "synth"), stories=150, seed=2)
    table = read_dataset(paths["train"], "archive")
    truth = dict(zip(table.column("clipping_id").to_pylist(), table.column("label").to_pylist(), strict=True))
    folder = str(root / "unlabelled")
    write_dataset(table.drop(["label"]), folder, rows_per_part=80)  # two parts
    return folder, truth


@pytest.fixture(scope="module")
def mined(hidden, ray_local, tmp_path_factory):
    folder, _ = hidden
    out = str(tmp_path_factory.mktemp("mined") / "out")
    rc = cli.main(["mine", "--archive", folder, "--model", "tiny", "--out", out])
    return rc, out


def test_mine_accounts_for_every_id_and_keeps_groups_whole(hidden, mined):
    _, truth = hidden
    rc, out = mined
    assert rc == 0
    train = read_archive(f"{out}/train", require_labels=True)  # the project's reader, labels on every row
    val = read_archive(f"{out}/val", require_labels=True)
    left = pq.read_table(f"{out}/{LEFTOVERS}")
    ids = (train.column("clipping_id").to_pylist() + val.column("clipping_id").to_pylist()
           + left.column("clipping_id").to_pylist())
    assert sorted(ids) == sorted(truth)  # no id lost, none twice
    assert all(r for r in left.column("reason").to_pylist())
    assert not set(train.column("label").to_pylist()) & set(val.column("label").to_pylist())
    assert val.num_rows > 0 and train.num_rows > val.num_rows
    assert train.column("image").null_count == 0 and "mined_confidence" in train.column_names
    import json

    record = json.loads(open(f"{out}/{MINE_JSON}").read())
    counts = record["counts"]
    assert (counts["train"], counts["val"], counts["leftovers"]) == (train.num_rows, val.num_rows, left.num_rows)
    assert "agreement" not in record  # the input carried no labels
    assert record["cuts"]["image"]["strict"] < record["cuts"]["image"]["auto"]


def test_mined_pairs_are_precise_against_the_hidden_labels(hidden, mined):
    _, truth = hidden
    _, out = mined
    kept = pa.concat_tables([read_archive(f"{out}/train"), read_archive(f"{out}/val")])
    ids = kept.column("clipping_id").to_pylist()
    labels = kept.column("label").to_pylist()
    true = [truth[i] for i in ids]
    prf = pairwise_prf(true, labels)
    assert prf["predicted_pairs"] >= 20
    assert prf["precision"] >= 0.9
    # the same group sizes over the same rows, members drawn at random: far below the bar
    shuffled = np.random.default_rng(0).permutation(np.asarray(labels, object))
    assert pairwise_prf(true, shuffled.tolist())["precision"] < 0.5
    # confidence: one value per group, in [0, 1]; NaN only for singletons
    conf = np.asarray(kept.column("mined_confidence").to_pylist(), float)
    sizes = dict(zip(*np.unique(labels, return_counts=True), strict=True))
    grouped = np.array([sizes[x] > 1 for x in labels])
    assert np.all((conf[grouped] >= 0) & (conf[grouped] <= 1)) and np.all(np.isnan(conf[~grouped]))


def test_mine_refuses_a_missing_archive_and_an_earlier_mining(tmp_path, capsys, mined, hidden):
    rc = cli.main(["mine", "--archive", str(tmp_path / "nope"), "--model", "tiny", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "folder not found" in err[0]
    _, out = mined
    rc = cli.main(["mine", "--archive", hidden[0], "--model", "tiny", "--out", out])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and "--overwrite" in err[-1]


def test_split_keeps_groups_together_and_gives_val_a_group():
    labels = np.array(["mined-a"] * 3 + ["mined-b"] * 2 + ["mined-c"] * 2 + ["mined-x", "mined-y", None], object)
    kind = np.array(["group"] * 7 + ["singleton"] * 2 + ["leftover"], object)
    mined = Mined(np.array([f"r{i}" for i in range(10)], object), labels, np.zeros(10), kind,
                  np.full(10, None, object), {})
    val = split_val(mined, seed=3)
    assert not val[-1]
    for label in ("mined-a", "mined-b", "mined-c"):
        assert len(set(val[labels == label])) == 1
    assert val[:7].any() and not val[:7].all()
    assert (split_val(mined, seed=3) == val).all()


def test_char_ngrams_ignore_case_and_punctuation():
    sets = char_ngram_sets(["Gen. Pershing", "gen pershing!", "", "ab"], 4)
    assert list(sets.sizes) == [9, 9, 0, 1]
    assert (sets.grams[sets.indptr[0]:sets.indptr[1]] == sets.grams[sets.indptr[1]:sets.indptr[2]]).all()


@pytest.mark.parametrize("n", [1, 3, 4, 8])
def test_char_ngrams_are_the_python_sets_of_substrings(n):
    from clippings.baselines import clean_caption
    from clippings.synth import generate_captions

    captions = generate_captions(40, seed=1)[0] + ["", "ab", "ab", "A-  b", None, "abcdefghij"]
    texts = [" ".join(clean_caption(c)) for c in captions]
    expected = [{t[s:s + n] for s in range(max(len(t) - n + 1, 1))} if t else set() for t in texts]
    sets = char_ngram_sets(captions, n)
    grams = [set(sets.grams[sets.indptr[i]:sets.indptr[i + 1]].tolist()) for i in range(len(captions))]
    assert [len(g) for g in grams] == [len(e) for e in expected]
    for i, j in itertools.combinations(range(len(captions)), 2):  # the same gram has the same id
        assert len(grams[i] & grams[j]) == len(expected[i] & expected[j])
    with pytest.raises(BadInput, match=r"'ngram' parameter of mine must be an int in the range \[1, 8\]"):
        char_ngram_sets(captions, 9)


def test_rule_needs_all_three_witnesses():
    """Ten near-duplicate pairs among ten loners: a pair joins only when its captions agree too; the loners
    (far from everything in both towers and in caption n-grams) are kept as singletons; the pairs the
    captions veto are left out."""
    from clippings.mine import mine_embeddings

    rng = np.random.default_rng(0)
    base = rng.normal(size=(20, 16))
    rows = np.concatenate([np.repeat(base[:10], 2, axis=0), base[10:]])
    image = rows + 0.01 * rng.normal(size=rows.shape)
    text = rows[:, ::-1] + 0.01 * rng.normal(size=rows.shape)
    image /= np.linalg.norm(image, axis=1, keepdims=True)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    words = ["Kirkvale", "Laurelport", "Fitzmann", "Wolfling", "Ashby", "Quimper", "Dunmoor", "Yarrow",
             "Belcourt", "Ostrava", "Penhallow", "Zeeland"]
    captions = [f"{words[i // 2]} and {words[(i // 2 + 3) % 12]} meet" for i in range(20)] + [
        "".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), 16)) for _ in range(10)]  # echo no one
    captions[0] = captions[1] = ""  # empty captions embed alike: no witness
    captions[3] = "an entirely different caption"
    ids = np.array([f"c{i:02d}" for i in range(30)], object)
    mined = mine_embeddings(ids, image.astype(np.float32), text.astype(np.float32), captions)
    assert list(mined.kind[:4]) == ["leftover"] * 4
    assert list(mined.kind[4:20]) == ["group"] * 16 and list(mined.kind[20:]) == ["singleton"] * 10
    assert len(set(mined.label[4:20])) == 8 and mined.label[4] == "mined-c04"
    assert all(0 <= c <= 1 for c in mined.confidence[4:20]) and np.isnan(mined.confidence[20:]).all()
    assert all("not alone" in r for r in mined.reason[:4])


@pytest.mark.slow
def test_rounds_train_on_the_mined_folders_and_mine_again(hidden, ray_local, tmp_path):
    import json
    import os

    folder, truth = hidden
    out = str(tmp_path / "out")
    assert cli.main(["mine", "--archive", folder, "--model", "tiny", "--out", out, "--rounds", "2",
                     "--epochs", "1"]) == 0
    record = json.loads(open(f"{out}/{MINE_JSON}").read())
    assert record["round"] == 2 and [r["round"] for r in record["rounds"]] == [1]
    assert os.path.isfile(f"{out}/round-1/model/clippings.json") and record["model"] == f"{out}/round-1/model"
    left = pq.read_table(f"{out}/{LEFTOVERS}").column("clipping_id").to_pylist()
    kept = [read_archive(f"{out}/{s}", require_labels=True).column("clipping_id").to_pylist() for s in ("train", "val")]
    assert sorted(left + kept[0] + kept[1]) == sorted(truth)


@pytest.mark.slow
def test_mine_reads_and_writes_s3(hidden, ray_local, s3_bucket):
    folder, truth = hidden
    archive, out = f"{s3_bucket}/unlabelled", f"{s3_bucket}/mined"
    write_dataset(read_dataset(folder, "archive"), archive, rows_per_part=80)
    assert cli.main(["mine", "--archive", archive, "--model", "tiny", "--out", out]) == 0
    kept = [read_archive(f"{out}/{s}", require_labels=True).column("clipping_id").to_pylist() for s in ("train", "val")]
    from clippings.storage import read_part

    left = read_part(f"{out}/{LEFTOVERS}", "leftovers").column("clipping_id").to_pylist()
    assert sorted(left + kept[0] + kept[1]) == sorted(truth)


def test_a_round_mined_from_another_archive_is_not_resumed(hidden, mined, tmp_path):
    """A round folder is resumed only for the input, model and settings its mine.json records."""
    import json

    from clippings.errors import BadInput
    from clippings.mine import MineRules, _round_done, round_settings

    folder, _ = hidden
    _, out = mined
    record = json.loads(open(f"{out}/{MINE_JSON}").read())
    assert _round_done(out, round_settings(folder, "tiny", MineRules(), 0, 0.2)) == record
    other = str(tmp_path / "other")
    write_dataset(read_dataset(folder, "archive").slice(0, 50), other)
    with pytest.raises(BadInput, match=r"input\.") as refused:
        _round_done(out, round_settings(other, "tiny", MineRules(), 0, 0.2))
    assert "\n" not in str(refused.value) and "--overwrite" in str(refused.value)


def test_archive_scale_searches_mine_the_same_groups(hidden, mined, monkeypatch):
    """Above clippings.link.auto.FLAT_MAX rows (forced to 10 here) mine's searches run on IVF cells; on the
    built-in archive they mine the same groups, singletons and leftovers as the exact flat searches, and
    the record names the search with its measured recalls; --index flat forces the exact searches back."""
    import json

    import clippings.link.auto as auto
    from clippings.embeddings import read_embeddings
    from clippings.mine import MineRules, mine_embeddings

    folder, _ = hidden
    _, out = mined
    assert json.loads(open(f"{out}/{MINE_JSON}").read())["search"]["index"] == "flat"
    emb = read_embeddings(f"{out}/embeddings")
    table = read_dataset(folder, "archive")
    caption = dict(zip(table.column("clipping_id").to_pylist(), table.column("caption").to_pylist(), strict=True))
    captions = [caption[i] for i in emb.ids.tolist()]
    exact = mine_embeddings(emb.ids, emb.image, emb.text, captions)
    monkeypatch.setattr(auto, "FLAT_MAX", 10)
    scale = mine_embeddings(emb.ids, emb.image, emb.text, captions)
    forced = mine_embeddings(emb.ids, emb.image, emb.text, captions, MineRules(index="flat"))
    assert exact.search["index"] == forced.search["index"] == "flat" and scale.search["index"] == "ivf"
    assert scale.label.tolist() == exact.label.tolist() == forced.label.tolist()
    assert scale.kind.tolist() == exact.kind.tolist() and scale.pairs["mined"] == exact.pairs["mined"]
    assert scale.pairs["image_strict"] <= exact.pairs["image_strict"]  # each row's k nearest within the cut
    assert (exact.kind == "group").sum() >= 20
    record = scale.search
    assert record["strict_pairs"]["joined_recall"] >= 0.995
    assert all(record[tower]["near_recall"] == 1.0 and 0 < record[tower]["nn_recall"] <= 1
               for tower in ("image", "text"))
