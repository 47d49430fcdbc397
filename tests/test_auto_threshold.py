"""`--threshold auto`: a cut chosen from the MST edge lengths alone, recorded, shown, and refused when unclear."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from clippings.cli import main
from clippings.embeddings import Embeddings, embeddings_table
from clippings.errors import BadInput
from clippings.link.auto import METHODS, MIN_DEPTH, choose, cut_of, cut_table, edge_lengths, is_clear
from clippings.link.knn import knn_graph
from clippings.link.slink import components, mst_from_graph
from clippings.storage import write_dataset


def grouped_signs(n: int, seed: int, flip: float = 0.03) -> tuple[np.ndarray, np.ndarray]:
    """n sign vectors (entries ±1/8, d = 64) in ~n/2 groups (singletons, pairs, triples, …) around random
    centres, each sign flipped with probability `flip`: within-group distances ≲ 0.15, between ≳ 0.5."""
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, n // 2, n)
    x = rng.choice([-1.0, 1.0], size=(n // 2, 64))[groups]
    x[rng.random((n, 64)) < flip] *= -1
    return (x / 8.0).astype(np.float32), groups


def unit_noise(n: int, seed: int, dim: int = 64) -> np.ndarray:
    """n random unit vectors: one mode of edge lengths, no reprints."""
    x = np.random.default_rng(seed).normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def exact_cut(x: np.ndarray, t: float) -> np.ndarray:
    graph = knn_graph(x, k=len(x) - 1)
    return components(mst_from_graph(len(x), graph.src, graph.dst, graph.distance), t)


def _write(path: str, image: np.ndarray, text: np.ndarray) -> str:
    ids = [f"p{i:04d}" for i in range(len(image))]
    write_dataset(embeddings_table(ids, image, text, "tiny@abc", "tiny"), path, rows_per_part=100)
    return path


@pytest.mark.parametrize("method", METHODS)
def test_each_method_separates_well_separated_groups(method):
    x, groups = grouped_signs(300, seed=1)
    cut = cut_of(edge_lengths(x), method)
    assert cut.depth >= 0.5 and cut.separation > 2
    assert adjusted_rand_score(groups, exact_cut(x, cut.threshold)) == 1.0


@pytest.mark.parametrize("method", METHODS)
def test_unimodal_lengths_are_refused_with_the_score_and_the_bound(method):
    emb = Embeddings(np.array([f"p{i}" for i in range(300)], dtype=object), unit_noise(300, 2),
                     unit_noise(300, 3), "fp", "tiny")
    with pytest.raises(BadInput, match=rf"valley depth 0\.\d+ < {MIN_DEPTH:g} .*give --threshold T"):
        choose(emb, (0.5,), method=method)


def test_a_deep_valley_that_joins_most_clippings_into_one_group_is_refused():
    """A chain of look-alikes (each a small step from the last) and a few far rows: the valley between the
    chain's short edges and the outliers' long ones is deep, but the cut joins the whole chain."""
    from clippings.link.auto import MAX_GROUP_SHARE

    rng = np.random.default_rng(4)
    chain = [rng.normal(size=64)]
    for _ in range(179):
        chain.append(chain[-1] + 0.15 * rng.normal(size=64))
    x = np.concatenate([np.array(chain), rng.normal(size=(20, 64)) * 10])
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    assert cut_of(edge_lengths(x)).depth >= MIN_DEPTH  # the valley alone would accept it
    emb = Embeddings(np.array([f"p{i}" for i in range(len(x))], dtype=object), x, x, "fp", "tiny")
    with pytest.raises(BadInput, match=rf"joins 9\d\.\d % of the clippings into one group, more than "
                                       rf"{100 * MAX_GROUP_SHARE:g} %: not reprints\); give --threshold T"):
        choose(emb, (0.5,))


def test_w_is_chosen_where_one_tower_is_noise():
    """Groups live in the text tower only: the image tower's noise drowns them at w = 1 and blurs them at
    w = 0.5; the choice must lean on text and separate the groups: the clear cut with the smallest largest
    group, then the most separated."""
    text, groups = grouped_signs(300, seed=4)
    image = unit_noise(300, 5)
    emb = Embeddings(np.array([f"p{i}" for i in range(300)], dtype=object), image, text, "fp", "tiny")
    cut = choose(emb)
    assert cut.im_wt < 0.5
    clear = [g for g in cut.grid if is_clear(g)]
    chosen = next(g for g in clear if g["im_wt"] == cut.im_wt)
    assert all((chosen["largest_share"], -chosen["separation"]) <= (g["largest_share"], -g["separation"])
               for g in clear)
    assert 1.0 not in {g["im_wt"] for g in clear}
    assert adjusted_rand_score(groups, exact_cut(emb.pooled(cut.im_wt), cut.threshold)) == 1.0


def test_cut_table_counts_clusters_largest_singletons_and_edges_near_the_cut():
    x, groups = grouped_signs(120, seed=6)
    graph = knn_graph(x, k=119)
    mst = mst_from_graph(120, graph.src, graph.dst, graph.distance)
    table = cut_table(mst, 0.3, exact_up_to=0.4, factors=(0.5, 1.0, 1.5))
    rows = table["rows"]
    assert table["delta"] == pytest.approx(0.015)
    assert [r["threshold"] for r in rows] == [0.15, 0.3, 0.44999999999999996]
    for r in rows:
        sizes = np.bincount(components(mst, r["threshold"]))
        assert (r["clusters"], r["largest"], r["singletons"]) == (len(sizes), sizes.max(), (sizes == 1).sum())
        assert r["edges_within_delta"] == int((np.abs(mst.distance - r["threshold"]) <= 0.015).sum())
    assert [r["exact"] for r in rows] == [True, True, False]


def test_link_auto_records_method_t_w_and_table(tmp_path, capsys):
    text, groups = grouped_signs(240, seed=7)
    emb = _write(str(tmp_path / "emb"), unit_noise(240, 8), text)
    out = tmp_path / "links"
    assert main(["link", "--embeddings", emb, "--out", str(out), "--threshold", "auto"]) == 0
    assert "threshold auto: t=" in capsys.readouterr().out
    info = json.loads((out / "links.json").read_text())
    auto = info["auto"]
    assert auto["method"] == "valley" and auto["threshold"] == info["threshold"] and auto["im_wt"] == info["im_wt"]
    assert auto["depth"] >= auto["min_depth"] == MIN_DEPTH
    assert [g["im_wt"] for g in auto["grid"]] == [0.0, 0.25, 0.5, 0.75, 1.0]
    middle = auto["table"]["rows"][len(auto["table"]["rows"]) // 2]
    assert middle["threshold"] == info["threshold"] and middle["clusters"] == info["counts"]["clusters"]
    import pyarrow.parquet as pq

    clusters = pq.read_table(out / "clusters.parquet").column("cluster_id").to_pylist()
    assert adjusted_rand_score(groups, clusters) == 1.0


def test_link_auto_with_fixed_w_and_another_method(tmp_path):
    x, _ = grouped_signs(200, seed=9)
    emb = _write(str(tmp_path / "emb"), x, x)
    out = tmp_path / "links"
    argv = ["link", "--embeddings", emb, "--out", str(out), "--threshold", "auto", "--im-wt", "0.3",
            "--auto-method", "gmm"]
    assert main(argv) == 0
    auto = json.loads((out / "links.json").read_text())["auto"]
    assert (auto["method"], auto["im_wt"], len(auto["grid"])) == ("gmm", 0.3, 1)


def test_link_auto_refuses_unimodal_embeddings_in_one_line(tmp_path, capsys):
    emb = _write(str(tmp_path / "emb"), unit_noise(200, 10), unit_noise(200, 11))
    out = tmp_path / "links"
    assert main(["link", "--embeddings", emb, "--out", str(out), "--threshold", "auto"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "no clear cut" in err and f"< {MIN_DEPTH:g}" in err and "--threshold T" in err
    assert not os.path.exists(out / "links.json")


def test_link_auto_refused_with_from_links_and_bad_values(tmp_path, capsys):
    assert main(["link", "--from-links", str(tmp_path), "--out", str(tmp_path / "o"), "--threshold", "auto"]) == 2
    assert main(["link", "--embeddings", str(tmp_path), "--out", str(tmp_path / "o"), "--threshold", "near"]) == 2
    assert "expected a float or 'auto'" in capsys.readouterr().err


def test_report_shows_the_choice_and_the_table_until_a_recut():
    from clippings.report import cut_table_html, header_facts

    rows = [{"threshold": t, "clusters": c, "largest": 3, "singletons": 5, "edges_within_delta": 1,
             "exact": t <= 0.3} for t, c in ((0.2, 9), (0.25, 8), (0.3, 7))]
    auto = {"method": "valley", "threshold": 0.25, "im_wt": 0.25, "depth": 0.9, "min_depth": 0.5, "edges": 19,
            "grid": [{"im_wt": 0.0}, {"im_wt": 0.25}], "table": {"delta": 0.0125, "rows": rows}}
    info = {"threshold": 0.25, "im_wt": 0.25, "auto": auto}
    fact = header_facts(info, 20, 8, 3, 3)["Threshold chosen"]
    assert "valley" in fact and "t = 0.2500" in fact and "w = 0.25 (tried 0, 0.25)" in fact and "0.900 ≥ 0.5" in fact
    page = cut_table_html(info)
    assert page.count("<tr") == 4 and '<tr class="picked"><td>0.2500</td><td>8</td>' in page
    assert "±0.0125" in page
    recut = {**info, "threshold": 0.3}
    assert cut_table_html(recut) == "" and "Threshold chosen" not in header_facts(recut, 20, 7, 3, 3)


def test_tune_without_archive_chooses_and_writes_the_model(tmp_path, capsys):
    text, _ = grouped_signs(200, seed=12)
    emb = _write(str(tmp_path / "emb"), unit_noise(200, 13), text)
    model = tmp_path / "model"
    model.mkdir()
    (model / "clippings.json").write_text(json.dumps({"val_ari": 0.7}))
    out = tmp_path / "tune"
    assert main(["tune", "--embeddings", emb, "--model", str(model), "--out", str(out)]) == 0
    record = json.loads((out / "tune.json").read_text())
    meta = json.loads((model / "clippings.json").read_text())
    assert (meta["threshold"], meta["im_wt"]) == (record["threshold"], record["im_wt"])
    assert meta["threshold_method"] == "auto:valley" and meta["val_ari"] is None and record["im_wt"] < 0.5
    assert main(["tune", "--embeddings", _write(str(tmp_path / "noise"), unit_noise(200, 14), unit_noise(200, 15)),
                 "--im-wt", "0.5"]) == 2
    assert "tune without --archive: no clear cut" in capsys.readouterr().err


def test_ivf_cells_knn_never_underestimates_and_cuts_where_flat_does():
    """The archive-scale search (clippings.link.auto.cells_knn): found distances are true ones, so a row's
    nearest is never below the exact nearest; the measured recalls match a brute-force check; the cut of its
    edge lengths separates the groups as the exact lengths' cut does; the wider look of `nearest_within`
    finds a neighbour within t for every sampled row that has one; `cells_within` finds only pairs within t,
    and (the groups being smaller than k) nearly all of them."""
    from clippings.link.auto import cells_knn, cells_within, lengths_of, nearest_of, nearest_within, recall_at

    x, groups = grouped_signs(3000, seed=11)
    graph = cells_knn(x, 20)
    exact = nearest_of(knn_graph(x, k=1))
    near = nearest_of(graph)
    assert (near >= exact - 1e-9).all()
    rows = graph.stats["nn_sample"]
    assert graph.recall == pytest.approx(np.mean(near[rows] <= exact[rows] + 1e-6)) and graph.recall >= 0.9
    flat_cut = cut_of(edge_lengths(x, index="flat"))
    cut = cut_of(lengths_of(graph))
    assert cut.depth >= 0.5 and abs(cut.threshold - flat_cut.threshold) < 0.05
    assert adjusted_rand_score(groups, exact_cut(x, cut.threshold)) == 1.0
    assert recall_at(graph, cut.threshold) < 1.0  # some pairs straddle cells the kNN did not probe
    far = np.flatnonzero(near > cut.threshold)
    near[far] = np.minimum(near[far], nearest_within(x, graph, far, cut.threshold))
    assert (near >= exact - 1e-9).all() and recall_at(graph, cut.threshold, near) == 1.0
    a, b, dist, record = cells_within(x, graph, cut.threshold, 20)
    truth = knn_graph(x, k=20, threshold=cut.threshold)
    within = truth.distance <= cut.threshold
    truth_keys = set((truth.src[within] * len(x) + truth.dst[within]).tolist())
    found = set((a * len(x) + b).tolist())
    assert found <= truth_keys and (dist <= cut.threshold).all() and len(found) / len(truth_keys) >= 0.99
    assert record["pair_recall"] >= 0.99 and record["joined_recall"] >= 0.99


def test_link_auto_above_flat_max_reads_ivf_cells_and_records_their_recall(tmp_path, monkeypatch):
    """Above FLAT_MAX rows (forced to 100 here) `--threshold auto` reads the edge lengths from the IVF cells'
    kNN graph: links.json's auto record names the search and its nearest-neighbour recall, and the clusters
    are the groups, as with the exact lengths."""
    import clippings.link.auto as auto

    text, groups = grouped_signs(600, seed=7)
    emb = _write(str(tmp_path / "emb"), unit_noise(600, 8), text)
    monkeypatch.setattr(auto, "FLAT_MAX", 100)
    out = tmp_path / "links"
    assert main(["link", "--embeddings", emb, "--out", str(out), "--threshold", "auto"]) == 0
    record = json.loads((out / "links.json").read_text())["auto"]
    assert record["index"] == "ivf" and 0.9 <= record["nn_recall"] <= 1.0
    assert all(g["index"] == "ivf" for g in record["grid"])
    import pyarrow.parquet as pq

    clusters = pq.read_table(out / "clusters.parquet").column("cluster_id").to_pylist()
    assert adjusted_rand_score(groups, clusters) == 1.0
