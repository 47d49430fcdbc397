"""`clippings label` without a browser: the ask order, the answers file, the threshold the answers give (against
brute force), the exported groups, `tune --pairs` and the commands' bad-input lines.

`labelled_links` builds a small labelled archive whose two towers put reprints close (each tower alone
misleads a little), its embeddings, and a links folder from the exact MST of the pooled vectors (w = 0.5),
cut at a deliberately low t: the kind of folder a team labels.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from clippings.archive import CLUSTERS_SCHEMA, MST_SCHEMA, read_archive
from clippings.cli import main
from clippings.embeddings import embeddings_table, pool
from clippings.errors import BadInput
from clippings.label.answers import ANSWERS, Answer, AnswerLog, read_answers
from clippings.label.export import answered_groups, split_groups
from clippings.label.fit import bootstrap_interval, cut_errors, fit_answers, fit_threshold, precision_recall
from clippings.label.selection import SLOTS, PairPlan, answers_from_labels
from clippings.link.knn import knn_graph
from clippings.link.pipeline import read_links
from clippings.link.slink import Mst, components, cut_mst, joined_pairs, mst_from_graph
from clippings.storage import write_dataset, write_json, write_table_atomic


def png(colour: tuple[int, int, int], size: tuple[int, int] = (48, 32)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


def write_links(folder, ids: list[str], mst: Mst, threshold: float, im_wt: float = 0.5) -> None:
    """A links folder (clusters, mst, links.json) cut at `threshold`, as `clippings link` writes it."""
    folder.mkdir(parents=True)
    cluster = cut_mst(np.asarray(ids, dtype=object), mst, threshold)
    sizes = {c: int((cluster == c).sum()) for c in set(cluster.tolist())}
    write_table_atomic(pa.table({"clipping_id": ids, "cluster_id": cluster.tolist(),
                                 "cluster_size": [sizes[c] for c in cluster.tolist()]}, schema=CLUSTERS_SCHEMA),
                       str(folder / "clusters.parquet"))
    write_table_atomic(pa.table({"src": [ids[i] for i in mst.src], "dst": [ids[i] for i in mst.dst],
                                 "distance": mst.distance}, schema=MST_SCHEMA), str(folder / "mst.parquet"))
    write_json(str(folder / "links.json"), {"threshold": threshold, "im_wt": im_wt, "exact_up_to": 2.0})


def archive_table(ids: list[str], labels: list[str], captions: list[str]) -> pa.Table:
    images = [png((37 * i % 255, 90, 160)) for i in range(len(ids))]
    return pa.table({"clipping_id": ids, "image": pa.array(images, pa.binary()), "caption": captions,
                     "label": labels, "source": [f"Gazette {i % 3}" for i in range(len(ids))],
                     "date": [f"1921-05-{i % 9 + 1:02d}" for i in range(len(ids))]})


def build_labelled_links(root) -> dict:
    """{archive, emb, links, ids, labels, mst, threshold, image, text} under `root`: 16 stories (1-4 reprints),
    2 towers, links cut at the 30th percentile of the MST distances."""
    rng = np.random.default_rng(5)
    sizes = [1, 2, 3, 4] * 4
    labels = [f"story{s}" for s, n in enumerate(sizes) for _ in range(n)]
    ids = [f"c{i:03d}" for i in range(len(labels))]
    group = np.asarray([int(x[5:]) for x in labels])

    def tower(noise: float) -> np.ndarray:
        centres = rng.normal(size=(len(sizes), 24))
        x = centres[group] + noise * rng.normal(size=(len(ids), 24))
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    image, text = tower(0.45), tower(0.6)
    pooled = pool(image, text, 0.5)
    graph = knn_graph(pooled, k=len(ids) - 1)
    mst = mst_from_graph(len(ids), graph.src, graph.dst, graph.distance)
    threshold = float(np.quantile(mst.distance, 0.3))
    write_dataset(archive_table(ids, labels, [f"The {lab} story, reprint {i}" for i, lab in enumerate(labels)]),
                  str(root / "archive"), rows_per_part=20)
    write_dataset(embeddings_table(ids, image, text, "tiny:test", "tiny"), str(root / "emb"))
    write_links(root / "links", ids, mst, threshold)
    return {"root": root, "archive": str(root / "archive"), "emb": str(root / "emb"), "links": str(root / "links"),
            "ids": ids, "labels": labels, "mst": mst, "threshold": threshold, "image": image, "text": text}


@pytest.fixture(scope="module")
def labelled_links(tmp_path_factory):
    return build_labelled_links(tmp_path_factory.mktemp("label"))


# ---------------------------------------------------------------- the threshold from answers


def _brute_force_errors(d: np.ndarray, same: np.ndarray, t: float, weights: np.ndarray | None = None) -> float:
    weights = np.ones(len(d)) if weights is None else weights
    return float((weights * (((d <= t) & ~same) | ((d > t) & same))).sum())


@pytest.mark.parametrize("seed", range(6))
def test_fit_threshold_is_a_best_cut_by_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 40))
    d = rng.choice(np.round(rng.random(12), 2), size=n)  # ties on purpose
    same = rng.random(n) < (1.0 - d)  # nearer pairs are more often Same
    same[0], same[-1] = True, False
    weights = None if seed % 2 else rng.integers(1, 50, size=n).astype(float)  # votes as Answer.joins
    fit = fit_threshold(d, same, weights)
    grid = np.unique(np.r_[0.0, d, (d[:, None] + d[None, :]).ravel() / 2, d.max() + 1])
    best = min(_brute_force_errors(d, same, t, weights) for t in grid)
    t, errors = fit
    assert errors == best == _brute_force_errors(d, same, t, weights)
    u, per_cut = cut_errors(d, same, weights)
    assert per_cut.min() == best and len(per_cut) == len(u) + 1
    # the fit sits strictly between answered distances (or at 0 / the largest), so no pair lies exactly on t
    assert t not in set(d.tolist()) or t == d.max()


def test_fit_threshold_edges_and_interval():
    assert fit_threshold(np.array([0.1, 0.2]), np.array([True, True])) is None
    assert fit_threshold(np.array([0.1, 0.3]), np.array([True, False])) == (0.2, 0)
    # an exactly separable set: the interval lies inside the gap's neighbourhood and repeats with the seed
    d = np.r_[np.linspace(0.05, 0.20, 30), np.linspace(0.30, 0.6, 30)]
    same = np.r_[np.ones(30, bool), np.zeros(30, bool)]
    assert fit_threshold(d, same) == (0.25, 0)
    low, high = bootstrap_interval(d, same, np.ones(len(d)), seed=1)
    assert 0.15 < low <= 0.25 <= high < 0.35
    assert bootstrap_interval(d, same, np.ones(len(d)), seed=1) == (low, high)
    assert precision_recall(np.array([0.1, 0.2, 0.3, 0.4]), np.array([True, False, True, False]), 0.25) == (0.5, 0.5)
    assert precision_recall(np.array([0.5]), np.array([False]), 0.25) == (None, None)


def test_fit_answers_counts_unsure_apart_and_uses_random_pairs_for_precision():
    rows = [(0.1, "same", "below"), (0.15, "same", "random"), (0.2, "unsure", "above"), (0.3, "different", "random"),
            (0.12, "different", "random"), (0.5, "different", "above")]
    answers = [Answer(i, f"a{i}", f"b{i}", d, ans, why) for i, (d, ans, why) in enumerate(rows)]
    fit = fit_answers(answers, seed=0)
    assert (fit.same, fit.different, fit.unsure, fit.random_pairs) == (2, 3, 1, 3)
    assert fit.disagreements == fit.wrong_pairs == 1 and fit.threshold is not None
    expected = precision_recall(np.array([0.15, 0.3, 0.12]), np.array([True, False, False]), fit.threshold)
    assert (fit.precision, fit.recall) == expected


def test_a_vote_weighs_the_pairs_its_edge_joins():
    """Three Same answers on singleton pairs below a Different answer whose edge would merge two groups of
    ten: one vote each links past it, the pairs they join keep t below it."""
    d = np.array([0.30, 0.31, 0.32, 0.33])
    same = np.array([True, False, True, True])
    assert fit_threshold(d, same)[0] > 0.32
    t, wrong = fit_threshold(d, same, np.array([1.0, 100.0, 1.0, 1.0]))
    assert t == pytest.approx(0.305) and wrong == 2.0
    answers = [Answer(i, f"a{i}", f"b{i}", float(x), "same" if s else "different", "below", j)
               for i, (x, s, j) in enumerate(zip(d, same, (1, 100, 1, 1), strict=True))]
    fit = fit_answers(answers, interval=False)
    assert (fit.threshold, fit.disagreements, fit.wrong_pairs) == (pytest.approx(0.305), 2, 2)


@pytest.mark.parametrize("seed", range(3))
def test_joined_pairs_counts_the_pairs_an_edge_first_connects(seed):
    """Oracle: the pairs connected with edges [0, e] and not with [0, e), counted over all pairs of points."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(30, 4))
    x[10:] = x[:20] + 0.01 * rng.normal(size=(20, 4))  # near-duplicates, so groups grow before they merge
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    graph = knn_graph(x.astype(np.float32), k=29)
    mst = mst_from_graph(30, graph.src, graph.dst, graph.distance)

    def connected_pairs(edges: int) -> int:
        sub = Mst(mst.n, mst.src[:edges], mst.dst[:edges], mst.distance[:edges])
        group = components(sub, np.inf)
        return int(sum(n * (n - 1) // 2 for n in np.bincount(group)))

    joined = [joined_pairs(mst, e) for e in range(len(mst.distance))]
    assert joined == [connected_pairs(e + 1) - connected_pairs(e) for e in range(len(mst.distance))]
    assert sum(joined) == 30 * 29 // 2 and max(joined) > 1


# ---------------------------------------------------------------- the ask order


def _hand_mst() -> tuple[Mst, list[str]]:
    # two groups {0,1,2} (0.1, 0.2) and {3,4} (0.15); between them 0.35, 0.5; the cut at 0.3
    src, dst, dist = np.array([0, 3, 1, 2, 4]), np.array([1, 4, 2, 3, 5]), np.array([0.1, 0.15, 0.2, 0.35, 0.5])
    return Mst(6, src, dst, dist), [f"k{i}" for i in range(6)]


def test_plan_order_near_the_cut_then_largest_then_random():
    mst, ids = _hand_mst()
    plan = PairPlan(mst, np.asarray(ids, dtype=object), 0.3, seed=0)
    answers: list[Answer] = []
    reasons, edges = [], []
    for seq in range(5):
        pair = plan.next(answers)
        reasons.append(pair.reason)
        edges.append(plan.edge_of(ids[pair.a], ids[pair.b]))
        # answer "unsure" so the cut stays the links' t and the slots are easy to follow
        answers.append(Answer(seq, ids[pair.a], ids[pair.b], pair.distance, "unsure", pair.reason))
    assert reasons[:2] == ["below", "above"] and edges[:2] == [2, 3]  # 0.2 just below, 0.35 just above
    # the largest group {0,1,2}: its weakest link 0.2 is answered, so the next group's, {3,4} at 0.15
    assert reasons[2] == "largest" and edges[2] == 1
    assert edges[3:] == [0, 4]  # then below (0.1) and above (0.5)
    assert plan.next(answers) is None  # every edge answered


def test_plan_is_deterministic_asks_each_edge_once_and_undo_brings_the_pair_back(labelled_links):
    ids, labels, mst = labelled_links["ids"], labelled_links["labels"], labelled_links["mst"]
    plan = PairPlan(mst, np.asarray(ids, dtype=object), labelled_links["threshold"], seed=3)
    everything = answers_from_labels(plan, labels, 10_000)
    assert len(everything) == len(mst.distance)  # every MST edge once, then None
    assert len({a.key for a in everything}) == len(everything)
    again = answers_from_labels(PairPlan(mst, np.asarray(ids, dtype=object), labelled_links["threshold"], seed=3), labels, 20)
    assert again == everything[:20]
    # after an undo the plan offers the undone pair again
    nxt = plan.next(everything[:7])
    assert (ids[nxt.a], ids[nxt.b]) == (everything[7].a, everything[7].b)
    # the first cycle follows the slots in order
    other = answers_from_labels(PairPlan(mst, np.asarray(ids, dtype=object), labelled_links["threshold"], seed=4), labels, 6)
    assert [a.reason for a in other] == list(SLOTS)


def test_answers_near_the_cut_find_the_labelled_best_t(labelled_links):
    """40 simulated answers give a t whose ARI on the archive is the best cut's, within a few points."""
    from sklearn.metrics import adjusted_rand_score

    ids, labels, mst = labelled_links["ids"], labelled_links["labels"], labelled_links["mst"]
    answers = answers_from_labels(PairPlan(mst, np.asarray(ids, dtype=object), labelled_links["threshold"]), labels, 40)
    t = fit_answers(answers).threshold
    best = max(adjusted_rand_score(labels, components(mst, d)) for d in mst.distance)
    assert adjusted_rand_score(labels, components(mst, t)) >= 0.9 * best


# ---------------------------------------------------------------- the answers file


def test_answers_file_survives_restart_undo_and_a_torn_line(tmp_path):
    log = AnswerLog(str(tmp_path))
    log.add("a", "b", 0.1, "same", "below")
    log.add("c", "b", 0.2, "different", "above")
    with pytest.raises(ValueError, match="already answered"):
        log.add("b", "a", 0.1, "different", "below")
    with pytest.raises(ValueError, match="must be one of"):
        log.add("x", "y", 0.1, "maybe", "below")
    assert log.undo().key == ("b", "c")
    log.add("c", "d", 0.3, "unsure", "random")
    path = tmp_path / ANSWERS
    with open(path, "a") as f:
        f.write('{"kind": "answer", "seq": 9, "a": "e"')  # a write torn by a kill
    reread = read_answers(str(tmp_path))
    assert [(a.a, a.b, a.answer) for a in reread] == [("a", "b", "same"), ("c", "d", "unsure")]
    log = AnswerLog(str(tmp_path))  # reopening cuts the torn line, then appends whole lines again
    assert log.answers == reread and log.answered("b", "a") and not log.answered("b", "c")
    log.add("e", "f", 0.4, "same", "largest")
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["kind"] for r in records] == ["answer", "answer", "undo", "answer", "answer"]
    assert [r["seq"] for r in records] == [0, 1, 2, 3, 4] and records[2]["undoes"] == 1
    assert [a.seq for a in read_answers(str(tmp_path))] == [0, 3, 4]
    path.write_text(path.read_text() + "not json\n" + json.dumps(records[0]) + "\n")
    with pytest.raises(BadInput, match="line 6 is not an answer or undo record"):
        read_answers(str(tmp_path))
    with pytest.raises(BadInput, match="no answers.jsonl"):
        read_answers(str(tmp_path / "nowhere"))


# ---------------------------------------------------------------- export


def test_groups_from_answers_split_where_a_different_says_so():
    rows = [("a", "b", 0.1, "same"), ("b", "c", 0.3, "same"), ("a", "c", 0.4, "different"),
            ("d", "e", 0.2, "same"), ("e", "f", 0.25, "unsure"), ("g", "h", 0.5, "different")]
    groups = answered_groups([Answer(i, a, b, d, ans, "below") for i, (a, b, d, ans) in enumerate(rows)])
    assert groups.labels == {"a": "a", "b": "a", "c": "c", "d": "d", "e": "d", "g": "g", "h": "h"}
    assert groups.conflicts == [{"same": ["b", "c"], "different": ["a", "c"]}]
    train, val = split_groups(groups.labels, 0.5, seed=0)
    assert train | val == {"a", "c", "d", "g", "h"} and not train & val
    assert len(val & {"a", "d"}) == 1  # the reprint groups are dealt out separately from the singletons


def test_label_export_writes_train_and_val_archives(labelled_links, tmp_path):
    ids, labels, mst = labelled_links["ids"], labelled_links["labels"], labelled_links["mst"]
    out = tmp_path / "answers"
    log = AnswerLog(str(out))
    for a in answers_from_labels(PairPlan(mst, np.asarray(ids, dtype=object), labelled_links["threshold"]), labels, 30):
        log.add(a.a, a.b, a.distance, a.answer, a.reason)
    argv = ["label", "--links", labelled_links["links"], "--archive", labelled_links["archive"], "--out", str(out)]
    assert main([*argv, "--export", "--val-fraction", "0.3"]) == 0
    summary = json.loads((out / "groups" / "groups.json").read_text())
    assert summary["conflicts"] == []  # a truthful labeller never contradicts itself
    train = read_archive(str(out / "groups" / "train"), require_labels=True)
    val = read_archive(str(out / "groups" / "val"), require_labels=True)
    rows = train.to_pylist() + val.to_pylist()
    assert len(rows) == summary["clippings"] and summary["val_groups"] > 0
    truth = dict(zip(ids, labels, strict=True))
    # exported groups never join two stories, and each row keeps its image and caption
    for label in {r["label"] for r in rows}:
        assert len({truth[r["clipping_id"]] for r in rows if r["label"] == label}) == 1
    assert all(r["image"] and r["caption"].startswith("The story") for r in rows)


# ---------------------------------------------------------------- tune --pairs


def test_tune_from_pairs_matches_brute_force_over_w_and_t(labelled_links, tmp_path):
    ids, labels, mst = labelled_links["ids"], labelled_links["labels"], labelled_links["mst"]
    pairs = tmp_path / "pairs"
    log = AnswerLog(str(pairs))
    answers = answers_from_labels(PairPlan(mst, np.asarray(ids, dtype=object), labelled_links["threshold"]), labels, 35)
    for a in answers:
        log.add(a.a, a.b, a.distance, a.answer, a.reason, a.joins)
    assert read_answers(str(pairs)) == answers  # the joins are recorded and read back
    out = tmp_path / "tuned"
    assert main(["tune", "--pairs", str(pairs), "--embeddings", labelled_links["emb"], "--out", str(out),
                 "--search-im-wt"]) == 0
    record = json.loads((out / "tune.json").read_text())
    row = {c: i for i, c in enumerate(ids)}
    same = np.asarray([a.answer == "same" for a in answers])
    joins = np.asarray([a.joins for a in answers], float)
    assert joins.max() > 1
    best = None
    for w in [round(0.1 * i, 1) for i in range(11)]:
        v = pool(labelled_links["image"], labelled_links["text"], w)
        d = np.asarray([1.0 - float(v[row[a.a]] @ v[row[a.b]]) for a in answers])
        errors = min(_brute_force_errors(d, same, t, joins) for t in np.r_[0.0, np.sort(d)])
        if best is None or errors < best[0] or (errors == best[0] and abs(w - 0.5) < abs(best[1] - 0.5)):
            best = (errors, w)
    assert (record["wrong_pairs"], record["im_wt"]) == best
    low, high = record["interval"]
    assert low <= record["threshold"] <= high
    assert record["random_pairs"] == sum(a.reason == "random" for a in answers)
    # by default w stays the one the pairs were asked at, and the fit at the links' distances is the recorded one
    assert main(["tune", "--pairs", str(pairs), "--embeddings", labelled_links["emb"], "--out", str(out)]) == 0
    fixed = json.loads((out / "tune.json").read_text())
    assert fixed["im_wt"] == 0.5
    assert fixed["threshold"] == pytest.approx(fit_answers(answers).threshold, abs=1e-6)
    # the label folder's links w (label.json, written by 'clippings label') is the w they were asked at
    write_json(str(pairs / "label.json"), {"im_wt": 0.3})
    assert main(["tune", "--pairs", str(pairs), "--embeddings", labelled_links["emb"], "--out", str(out)]) == 0
    assert json.loads((out / "tune.json").read_text())["im_wt"] == 0.3


def test_bad_input_is_one_line_and_exit_2(labelled_links, tmp_path, capsys):
    emb, links, archive = labelled_links["emb"], labelled_links["links"], labelled_links["archive"]
    assert main(["tune", "--pairs", str(tmp_path / "none"), "--embeddings", emb]) == 2
    assert main(["tune", "--pairs", str(tmp_path), "--embeddings", emb, "--archive", archive]) == 2
    only_same = tmp_path / "same"
    AnswerLog(str(only_same)).add(labelled_links["ids"][0], labelled_links["ids"][1], 0.1, "same", "below")
    assert main(["tune", "--pairs", str(only_same), "--embeddings", emb]) == 2
    assert main(["label", "--links", str(tmp_path / "nolinks"), "--archive", archive, "--out", str(tmp_path / "o")]) == 2
    assert main(["label", "--links", links, "--archive", archive, "--out", str(tmp_path / "o"), "--port", "70000"]) == 2
    assert main(["label", "--links", links, "--archive", archive, "--out", str(tmp_path / "o"), "--export"]) == 2
    # a label folder started on other links is refused
    other = tmp_path / "other_links"
    mst, ids = _hand_mst()
    write_links(other, ids, mst, 0.3)
    write_dataset(archive_table(ids, ids, ids), str(tmp_path / "other_archive"))
    from clippings.label.server import LabelSession

    LabelSession(str(other), str(tmp_path / "other_archive"), str(tmp_path / "o2"))
    with pytest.raises(BadInput, match="holds answers for links"):
        LabelSession(links, archive, str(tmp_path / "o2"))
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("clippings")]
    assert len(errors) == 6 and all(": error: " in line for line in errors)
    assert read_links(links)[2]["threshold"] == labelled_links["threshold"]
