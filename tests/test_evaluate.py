"""Scoring: pairwise P/R/F1 against all pairs, ARI against sklearn, and `clippings evaluate` end to end."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pyarrow as pa
import pytest
from sklearn.metrics import adjusted_rand_score

from clippings import cli
from clippings.archive import CLUSTERS_SCHEMA, quarantine_table, read_archive, write_quarantine
from clippings.evaluate import ari, cluster_size_summary, evaluate_clusters, pairwise_prf
from clippings.storage import write_json, write_table_atomic


def _brute(labels_true, labels_pred):
    tp = pp = tt = 0
    for i, j in itertools.combinations(range(len(labels_true)), 2):
        same_t, same_p = labels_true[i] == labels_true[j], labels_pred[i] == labels_pred[j]
        tp += same_t and same_p
        pp += same_p
        tt += same_t
    return tp, pp, tt


@pytest.mark.parametrize("seed", range(6))
def test_pairwise_prf_matches_all_pairs(seed):
    rng = np.random.default_rng(seed)
    n = 45
    true = [f"t{x}" for x in rng.integers(0, 1 + seed * 3, n)]
    pred = [int(x) for x in rng.integers(0, 2 + seed, n)]
    tp, pp, tt = _brute(true, pred)
    m = pairwise_prf(true, pred)
    assert (m["true_positive_pairs"], m["predicted_pairs"], m["true_pairs"]) == (tp, pp, tt)
    assert m["precision"] == pytest.approx(tp / pp if pp else 1.0)
    assert m["recall"] == pytest.approx(tp / tt if tt else 1.0)
    p, r = m["precision"], m["recall"]
    assert m["f1"] == pytest.approx(2 * p * r / (p + r) if p + r else 0.0)
    assert ari(true, pred) == pytest.approx(adjusted_rand_score(true, pred))


def test_pairwise_prf_edge_cases():
    singletons = pairwise_prf(["a", "b", "c"], [1, 2, 3])
    assert (singletons["precision"], singletons["recall"], singletons["predicted_pairs"]) == (1.0, 1.0, 0)
    lumped = pairwise_prf(["a", "a", "b", "b"], [0, 0, 0, 0])
    assert lumped["precision"] == pytest.approx(2 / 6) and lumped["recall"] == 1.0
    assert pairwise_prf([], [])["f1"] == 1.0


def test_cluster_size_summary():
    ids = ["a"] * 35 + ["b"] * 12 + ["c"] * 3 + ["d", "e"]
    s = cluster_size_summary(ids)
    assert s == {"clusters": 5, "items": 52, "singletons": 2, "size_2_10": 1, "size_11_30": 1, "size_31_plus": 1,
                 "largest": 35, "mean_size": 52 / 5}
    m = evaluate_clusters(["x", "x", "y"], ["p", "p", "q"])
    assert m["ari"] == 1.0 and m["f1"] == 1.0 and m["n"] == 3


def _write_clusters(links, ids, cluster_ids):
    """A links folder as evaluate reads it: clusters.parquet, and links.json (a finished link's last file)."""
    sizes = {c: cluster_ids.count(c) for c in cluster_ids}
    write_table_atomic(pa.table({"clipping_id": ids, "cluster_id": cluster_ids,
                                 "cluster_size": [sizes[c] for c in cluster_ids]}, schema=CLUSTERS_SCHEMA),
                       str(links / "clusters.parquet"))
    write_json(str(links / "links.json"), {"threshold": 0.2})


def test_evaluate_cli_scores_links_and_writes_metrics(synth_dir, tmp_path, capsys):
    test = read_archive(str(synth_dir / "test"), require_labels=True)
    ids, labels = test.column("clipping_id").to_pylist(), test.column("label").to_pylist()
    pred = list(labels)
    pred[0] = "lonely"  # one clipping split off its group
    _write_clusters(tmp_path, ids, pred)
    assert cli.main(["evaluate", "--links", str(tmp_path), "--archive", str(synth_dir / "test")]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["ari"] == pytest.approx(adjusted_rand_score(labels, pred))
    assert metrics["precision"] == 1.0 and metrics["recall"] < 1.0 and metrics["quarantined"] == 0
    assert "evaluate: ARI " in capsys.readouterr().out


def test_evaluate_counts_quarantined_ids_as_singletons(synth_dir, tmp_path):
    test = read_archive(str(synth_dir / "test"), require_labels=True)
    ids, labels = test.column("clipping_id").to_pylist(), test.column("label").to_pylist()
    _write_clusters(tmp_path, ids[2:], labels[2:])
    write_quarantine(str(tmp_path), quarantine_table(ids[:2], "embed", ["unreadable image"] * 2), "part-00000.parquet")
    assert cli.main(["evaluate", "--links", str(tmp_path), "--archive", str(synth_dir / "test")]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["quarantined"] == 2
    assert metrics["ari"] == pytest.approx(adjusted_rand_score(labels, ["q0", "q1"] + labels[2:]))


def test_evaluate_rejects_links_missing_archive_ids(synth_dir, tmp_path, capsys):
    test = read_archive(str(synth_dir / "test"), require_labels=True)
    ids, labels = test.column("clipping_id").to_pylist(), test.column("label").to_pylist()
    _write_clusters(tmp_path, ids[4:], labels[4:])
    code = cli.main(["evaluate", "--links", str(tmp_path), "--archive", str(synth_dir / "test")])
    shown = ", ".join(repr(i) for i in sorted(ids[:4])[:3])
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        f"clippings evaluate: error: links {tmp_path}: 4 clipping_ids of archive {synth_dir / 'test'} are missing "
        f"from clusters.parquet and _quarantine (e.g. {shown}, ...); link the whole archive"
    )


def test_evaluate_rejects_links_of_another_archive(synth_dir, tmp_path, capsys):
    test = read_archive(str(synth_dir / "test"), require_labels=True)
    ids, labels = test.column("clipping_id").to_pylist(), test.column("label").to_pylist()
    _write_clusters(tmp_path, ids + ["zz-other"], labels + ["x"])
    assert cli.main(["evaluate", "--links", str(tmp_path), "--archive", str(synth_dir / "test")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"clippings evaluate: error: links {tmp_path}: 1 clipping_ids of clusters.parquet are not in archive "
        f"{synth_dir / 'test'} (e.g. 'zz-other'); evaluate against the archive that was linked"
    )


def test_evaluate_without_clusters_file(synth_dir, tmp_path, capsys):
    assert cli.main(["evaluate", "--links", str(tmp_path), "--archive", str(synth_dir / "test")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"clippings evaluate: error: links {tmp_path}: clusters.parquet not found; give a folder written by "
        "'clippings link' or 'clippings baseline'"
    )
