"""The cell-by-cell IVF search: spread over Ray actors it links exactly as in one process; its recall on
data with many small reprint groups; the index travels as a file, not through the object store."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pyarrow.parquet as pq
import pytest

from clippings.cli import main
from clippings.embeddings import embeddings_table
from clippings.link.knn import knn_graph
from clippings.link.slink import components, mst_from_graph
from clippings.storage import write_dataset
from tests.console_helpers import assert_quiet_about_ray, run_clippings
from tests.link_helpers import same_partition

T = 0.1


def reprint_groups(n: int, dim: int, seed: int) -> np.ndarray:
    """n unit vectors in groups of 1–20 (Zipf 2.5) whose members lie ~0.06 apart (some pairs > t = 0.1),
    groups at ~1 (a random pair in 32 dimensions is within t about once in 10⁷): modest edge counts."""
    rng = np.random.default_rng(seed)
    sizes = np.minimum(rng.zipf(2.5, size=n), 20)
    sizes = sizes[: int(np.searchsorted(np.cumsum(sizes), n)) + 1]
    sizes[-1] -= int(sizes.sum()) - n
    group = rng.permutation(np.repeat(np.arange(len(sizes)), sizes))  # reprints are not stored together
    centres = rng.standard_normal((len(sizes), dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = centres[group] + np.float32(0.25 / np.sqrt(dim)) * rng.standard_normal((n, dim), np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_cell_search_finds_the_pairs_within_t_and_reports_its_recall():
    x = reprint_groups(20_000, 32, seed=3)
    graph = knn_graph(x, threshold=T, index="ivf", recall_sample=500)
    assert graph.index == "ivf" and graph.stats["search"]["scheme"] == "cells"
    assert graph.stats["nlist"] == round(2 * np.sqrt(20_000))
    assert graph.recall >= 0.99
    assert np.all(graph.distance <= T)
    # the edges' distances are float64 cosine distances
    d = 1.0 - np.einsum("ij,ij->i", x[graph.src].astype(np.float64), x[graph.dst].astype(np.float64)) / (
        np.linalg.norm(x[graph.src].astype(np.float64), axis=1) * np.linalg.norm(x[graph.dst].astype(np.float64), axis=1))
    assert np.allclose(graph.distance, np.clip(d, 0, 2), atol=1e-12)
    # against brute force on a subset of rows: every pair found is a true pair within t
    exact = components(mst_from_graph(*_brute(x[:3000])), T)
    sub = (graph.src < 3000) & (graph.dst < 3000)
    found = components(mst_from_graph(3000, graph.src[sub], graph.dst[sub], graph.distance[sub]), T)
    # pairs lost to the recall can only split clusters, never join them
    assert len(set(zip(found.tolist(), exact.tolist(), strict=True))) == len(set(found.tolist()))


def test_part_lists_hold_each_cells_rows_in_place(tmp_path):
    """An add reads the old rows' IVF lists from the links folder's parts (sorted by cell, read in place; an
    unsorted part is sorted); a link reads them from one file of the rows in cell order, mapped. Both give
    each cell exactly its rows and their vectors."""
    from clippings.link.cellfile import open_lists, write_lists
    from clippings.link.cells import PartLists, centroid_quantizer, probe_cells
    from clippings.link.exact import exact_pairs

    x = reprint_groups(3_000, 16, seed=2)
    centroids = x[:: 3_000 // 24][:24].copy()
    assign = probe_cells(centroid_quantizer(centroids), x, 1)[:, 0].astype(np.int64)
    order = np.argsort(assign[:2_000], kind="stable")  # rows 0..1999 stored sorted by cell, as link writes them
    x[:2_000], assign[:2_000] = x[order], assign[order]
    blocks = [x[:1_000], x[1_000:2_000], x[2_000:]]  # the last block (a batch) is not sorted
    parts = PartLists(blocks, assign, 24)
    assert parts.inverse[0] is None and parts.inverse[1] is None and parts.inverse[2] is not None
    assert np.shares_memory(parts.vectors[0], x)  # a sorted part is read in place, not copied
    folder = write_lists(x, assign, 24, str(tmp_path / "cells"))
    mapped = open_lists(folder)
    assert isinstance(mapped.vectors[0], np.memmap)
    for lists in (parts, mapped):
        for cell in range(24):
            rows, vectors = lists.list(cell)
            want = np.flatnonzero(assign == cell)
            assert lists.size(cell) == len(rows) == len(want)
            assert sorted(rows.tolist()) == want.tolist()
            assert np.array_equal(vectors, x[rows])
        rows = np.array([2_999, 0, 1_500, 2_001, 7])
        assert np.array_equal(lists.take(rows), x[rows])
        seen = np.concatenate([numbers for numbers, _ in lists.pieces(700)])
        assert np.array_equal(np.sort(seen), np.arange(3_000))
        sample = np.arange(0, 3_000, 50)
        pairs = exact_pairs(lists, None, sample, T)
        assert len(pairs) > len(sample) and np.array_equal(pairs, exact_pairs(x, None, sample, T))


def _brute(x: np.ndarray):
    x64 = x.astype(np.float64)
    d = 1.0 - x64 @ x64.T
    i, j = np.nonzero(np.triu(d <= T, k=1))
    return len(x), i, j, np.clip(d[i, j], 0, 2)


def _write(path: str, x: np.ndarray, first: int = 0) -> str:
    """x as an embeddings dataset, row i of it named c<first + i>."""
    ids = [f"c{i:07d}" for i in range(first, first + len(x))]
    write_dataset(embeddings_table(ids, x, x, "tiny@abc", "tiny"), path, rows_per_part=50_000)
    return path


def test_actors_load_the_lists_from_their_folder_and_run_this_tree(tmp_path, ray_local):
    import ray

    from clippings.link.actors import CellSearcher
    from clippings.link.cellfile import open_lists, write_lists
    from clippings.link.cells import centroid_quantizer, probe_cells, train_centroids

    x = reprint_groups(5_000, 16, seed=1)
    centroids = train_centroids(x, 20)
    assign = probe_cells(centroid_quantizer(centroids), x, 1)[:, 0]
    folder = write_lists(x, assign, 20, str(tmp_path))
    assert open_lists(folder).ntotal == 5_000
    actor = ray.remote(num_cpus=0.5)(CellSearcher).remote(folder)
    import clippings

    assert ray.get(actor.where.remote()) == clippings.__file__
    ray.kill(actor)


def test_actors_take_a_gpu_each_only_where_the_cluster_has_one_per_actor(tmp_path, ray_local, capsys):
    """The actors' device follows the Ray cluster's GPUs, not the driver's (a GPU cluster's driver often has
    none); asking for GPUs where there are none is one line, in process and on actors."""
    import torch

    from clippings.errors import BadInput
    from clippings.link.actors import actor_device

    assert actor_device(2, None, 2.0) == "cuda" and actor_device(2, True, 3.0) == "cuda"
    assert actor_device(2, None, 1.0) is None  # fewer GPUs than actors: all on CPUs, none left waiting
    assert actor_device(2, False, 4.0) is None
    with pytest.raises(BadInput, match="needs 2 GPUs in the Ray cluster, which has 1"):
        actor_device(2, True, 1.0)
    if torch.cuda.is_available():
        return  # the refusals below are for machines without a GPU
    emb = _write(str(tmp_path / "emb"), reprint_groups(2_000, 8, seed=0))
    for where, extra in (("process", []), ("actors", ["--search-actors", "2"])):
        capsys.readouterr()
        code = main(["link", "--embeddings", emb, "--out", str(tmp_path / where), "--threshold", str(T),
                     "--index", "ivf", "--gpu", *extra])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "--gpu" in err, err


def test_search_actors_must_be_a_count(tmp_path, capsys):
    emb = _write(str(tmp_path / "emb"), reprint_groups(100, 8, seed=0))
    capsys.readouterr()
    code = main(["link", "--embeddings", emb, "--out", str(tmp_path / "o"), "--threshold", "0.1",
                 "--search-actors", "-1"])
    assert code == 2
    assert capsys.readouterr().err == (
        "clippings link: error: The 'search_actors' parameter of link must be an int in the range [0, inf). "
        "Got -1 instead.\n"
    )


def test_link_on_actors_prints_clean_lines_and_ray_goes_to_the_log(tmp_path):
    """Through the real console script (its own local Ray): the console rules of tests/console_helpers.py."""
    emb = _write(str(tmp_path / "emb"), reprint_groups(3_000, 16, seed=2))
    lines = run_clippings("link", "--embeddings", emb, "--out", str(tmp_path / "links"), "--threshold", str(T),
                          "--index", "ivf", "--search-actors", "2", cwd=str(tmp_path), timeout=600)
    assert_quiet_about_ray(lines)
    assert lines[0].startswith("link: ") and re.match(r"link: .* -> \S+ \(log: ", lines[-1]), lines
    assert len(lines) < 10, lines
    info = json.loads((tmp_path / "links" / "links.json").read_text())
    assert info["search"]["actors"] == 2


def test_dropping_shortcut_pairs_keeps_single_linkage_exact():
    """Groups of up to 300 near-copies give ~g²/2 pairs within t each; the cell search drops the pairs that
    close a triangle of nearer pairs. With every cell probed the search is exact, so its forest must have
    the exact forest's weight and cuts at every t up to the threshold (and DBSCAN's clusters at t)."""
    from clippings.link.cells import shortcut_pairs
    from tests.link_helpers import reference_clusters

    rng = np.random.default_rng(5)
    sizes = np.array([300, 200, 150, 100, 80, 60, 40, 25, 15, 10, 5, 3, 2] + [1] * 100)  # ≥ 1,024 rows: cells
    centres = rng.standard_normal((len(sizes), 24)).astype(np.float32)
    x = np.repeat(centres / np.linalg.norm(centres, axis=1, keepdims=True), sizes, axis=0)
    x += np.float32(0.3 / np.sqrt(24)) * rng.standard_normal(x.shape, np.float32)
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    t = 0.12  # some group pairs lie beyond t: the groups hold chains, not cliques
    exact = knn_graph(x, threshold=t, index="pruned", max_edges=None)
    ivf = knn_graph(x, threshold=t, index="ivf", nlist=8, nprobe=8)
    assert ivf.stats["search"]["scheme"] == "cells" and ivf.recall == 1.0
    cuts = (0.02, 0.05, 0.08, 0.1, t)
    want, got = (mst_from_graph(len(x), g.src, g.dst, g.distance) for g in (exact, ivf))
    assert float(got.distance.sum()) == pytest.approx(float(want.distance.sum()), abs=1e-12)
    for s in cuts:
        assert same_partition(components(got, s), components(want, s)), s
    dbscan, scipy_labels = reference_clusters(x, t)
    assert same_partition(dbscan, components(got, t)) and same_partition(scipy_labels, components(got, t))

    # directly: in one block (every row queries the one list), the dropped pairs are each the farthest of a
    # triangle whose two other pairs are kept or dropped in favour of nearer ones
    rows = np.arange(300)
    block = (x[rows] @ x[rows].T).ravel()
    hits = np.flatnonzero(block > 1 - t)
    j, i = np.divmod(hits, 300)
    drop = shortcut_pairs(lambda jj, kk: block[jj * 300 + kk], rows, rows, i, j, block[hits], 1e-4)
    assert 0.5 < drop.mean() < 1.0 and not drop[i == j].any()
    s64 = x[rows].astype(np.float64) @ x[rows].T.astype(np.float64)
    a, b = i[drop], j[drop]
    nearer = np.minimum(s64[a], s64[b]).max(axis=1)  # the best third vertex of each dropped pair's triangles
    assert np.all(nearer > s64[a, b])


def test_float16_products_rechecked_in_float32_keep_the_float32_search():
    """The GPU's products (clippings.link.devicecells; run here by torch on the CPU): float16 candidates, each
    re-checked in float32, give the float32 GEMM's hits and similarities up to float32 rounding, although
    the float16 products alone are off by far more; the whole search with every cell probed then links as
    the float32 one and DBSCAN do."""
    import torch

    from clippings.link.cells import BlasProduct
    from clippings.link.devicecells import TorchProduct
    from clippings.link.ivf import ivf_cells_graph
    from clippings.link.pruned import float32_margin
    from tests.link_helpers import reference_clusters

    x = reprint_groups(3000, 32, seed=4)
    min_sim = 1 - T - 2 * float32_margin(32)
    want_i, want_j, want_s, want_sim = BlasProduct().hits(x[:800], x, min_sim)
    half = TorchProduct("cpu")
    i, j, s, sim = half.hits(x[:800], half.queries(x), min_sim)
    got = dict(zip(zip(i.tolist(), j.tolist(), strict=True), s.tolist(), strict=True))
    want = dict(zip(zip(want_i.tolist(), want_j.tolist(), strict=True), want_s.tolist(), strict=True))
    assert len(want) > 1000
    assert all(abs(want.get(key, got.get(key)) - min_sim) < 1e-5 for key in got.keys() ^ want.keys())
    assert max(abs(got[key] - want[key]) for key in got.keys() & want.keys()) < 1e-5
    fp16 = (torch.from_numpy(x[want_j]).half() * torch.from_numpy(x[want_i]).half()).float().sum(1).numpy()
    assert np.abs(fp16 - want_s).max() > 10 * float32_margin(32)  # what the float32 re-check corrects
    np.testing.assert_allclose(sim(want_j[:200], want_i[:200]), want_sim(want_j[:200], want_i[:200]), atol=1e-5)

    graphs = [ivf_cells_graph(x, T, 8, 8, 500, 0.995, 0, 1 << 20, device=device) for device in (None, "cpu")]
    assert [g.stats["search"]["product"] for g in graphs] == ["cpu-float32", "torch-cpu-float16"]
    labels = [components(mst_from_graph(len(x), g.src, g.dst, g.distance), T) for g in graphs]
    dbscan, _ = reference_clusters(x, T)
    assert same_partition(labels[0], labels[1]) and same_partition(dbscan, labels[1])


def test_probes_with_a_calibrated_margin_reach_the_target_with_fewer_cells():
    """A row probes a cell beyond its own only when that centroid is within the margin of its nearest.
    Calibration picks, over nprobe × margin, the probes that reach the recall target with the fewest cells
    per row: never more than the smallest plain nprobe reaching it (margin ∞, a point of the grid). The
    linking reports the margin and its mean probes per row."""
    from clippings.link.cells import centroid_quantizer, nearest_centroids, probe_table, train_centroids
    from clippings.link.exact import exact_pairs
    from clippings.link.ivf import PROBE_MARGINS, calibrate_probes, nprobe_ladder, probe_recall

    table = probe_table(np.array([[0.9, 0.895, 0.8], [0.5, 0.2, 0.1]], np.float32),
                        np.array([[4, 7, 2], [3, 5, 6]], np.int32), 3, margin=0.01)
    assert table.tolist() == [[4, 7, -1], [3, -1, -1]]

    x = reprint_groups(20_000, 32, seed=6)
    quantizer = centroid_quantizer(train_centroids(x, 283, 0))
    rows = np.sort(np.random.default_rng(0).choice(len(x), 500, replace=False))
    truth = exact_pairs(x, None, rows, T)
    nprobe, margin = calibrate_probes(quantizer, x, truth, rows, 0.995, 283)
    sims, cells = nearest_centroids(quantizer, x, 64)
    chosen = probe_table(sims, cells, nprobe, margin)
    assert probe_recall(len(x), truth, chosen, cells[:, 0]) >= 0.995
    plain = next(p for p in nprobe_ladder(64) if probe_recall(len(x), truth, cells[:, :p], cells[:, 0]) >= 0.995)
    assert (chosen[rows] >= 0).sum(axis=1).mean() <= plain

    graph = knn_graph(x, threshold=T, index="ivf", recall_sample=500)
    stats = graph.stats
    assert graph.recall >= 0.99 and stats["mean_probes"] <= stats["nprobe"]
    assert stats["probe_margin"] is None or stats["probe_margin"] in PROBE_MARGINS


def test_an_add_calibrates_its_own_probes_for_pairs_found_from_one_side(tmp_path):
    """In `link --add` only the new rows query, so a pair is found from its new side alone: the link's nprobe,
    calibrated for pairs found from either side, misses more. The add calibrates its own probes on the
    one-sided coverage; its recall (reported, and measured here against brute force on every new row's
    pairs) reaches the target."""
    from clippings.link.exact import exact_pairs

    x = reprint_groups(20_000, 32, seed=9)
    _write(str(tmp_path / "old"), x[:18_000])
    _write(str(tmp_path / "new"), x[18_000:], first=18_000)
    links = str(tmp_path / "links")
    assert main(["link", "--embeddings", str(tmp_path / "old"), "--out", links, "--threshold", str(T),
                 "--index", "ivf"]) == 0
    assert main(["link", "--add", str(tmp_path / "new"), "--to", links, "--out", links]) == 0
    info = json.loads((tmp_path / "links" / "links.json").read_text())
    add = info["adds"][-1]
    assert add["recall"] >= 0.99 and add["nprobe"] >= 1
    assert "probe_margin" in add and info["graph"]["nprobe_calibrated"] is True
    clusters = pq.read_table(os.path.join(links, "clusters.parquet")).to_pydict()
    cluster = dict(zip(clusters["clipping_id"], clusters["cluster_id"], strict=True))
    truth = exact_pairs(x, None, np.arange(18_000, 20_000), T)
    a, b = truth // len(x), truth % len(x)
    joined = np.array([cluster[f"c{i:07d}"] == cluster[f"c{j:07d}"] for i, j in zip(a, b, strict=True)])
    assert len(truth) > 1000 and joined.mean() >= 0.99


def _kill_search_actors() -> list[int]:
    """SIGKILL every search actor of this test session's own Ray (its processes descend from this one and
    carry the class in their title), waiting until each is gone; their PIDs."""
    import contextlib
    import signal

    import psutil

    actors = []
    for proc in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):  # a worker Ray retires meanwhile
            if "CellSearcher" in " ".join(proc.cmdline()):
                proc.send_signal(signal.SIGKILL)
                actors.append(proc)
    psutil.wait_procs(actors, timeout=30)
    return [proc.pid for proc in actors]


def _killing_search(monkeypatch, killed: list[int], **given) -> None:
    """Make the link's actor search SIGKILL its actors when the first shard's result arrives (the driver's
    progress callback, before it hands out the next shard): the next shard then meets a dead actor, so a
    shard provably loses its actor mid-link, and a shard still running on another actor loses it too."""
    from clippings.link.actors import SHARD_TRIES, SearchPool

    search = SearchPool.search

    def killing(self, n, probes, shards, threshold, max_edges, progress=None, tries=SHARD_TRIES, sink=None):
        assert len(shards) > len(self.pool)  # a shard is left to hand out after the first result

        def kill_first(queries: int) -> None:
            if not killed:
                killed.extend(_kill_search_actors())
            if progress is not None:
                progress(queries)

        return search(self, n, probes, shards, threshold, max_edges, kill_first, given.get("tries", tries), sink)

    monkeypatch.setattr(SearchPool, "search", killing)


def test_a_search_shard_whose_actor_is_killed_runs_again_and_links_as_before(tmp_path, ray_local, monkeypatch,
                                                                              capsys):
    """A search actor SIGKILLed mid-link (a machine pre-empted): its shards run again on a new actor, each
    result folded in once, so the MST and the clusters are an undisturbed run's; each retry says so."""
    emb = _write(str(tmp_path / "emb"), reprint_groups(30_000, 16, seed=8))
    base = ["link", "--embeddings", emb, "--threshold", str(T), "--index", "ivf", "--nprobe", "4"]
    assert main([*base, "--out", str(tmp_path / "undisturbed")]) == 0
    killed: list[int] = []
    _killing_search(monkeypatch, killed)
    capsys.readouterr()
    assert main([*base, "--out", str(tmp_path / "killed"), "--search-actors", "2"]) == 0
    err = capsys.readouterr().err
    assert killed  # the actor that sent the first result at least; the other one too once it had started
    retried = [line for line in err.splitlines() if "lost its actor (it died); running it again" in line]
    assert retried and "Traceback" not in err, err
    assert len(retried) == (tmp_path / "killed" / "link.log").read_text().count("running it again on a new one")
    for name in ("clusters.parquet", "mst.parquet"):
        assert pq.read_table(tmp_path / "killed" / name).equals(pq.read_table(tmp_path / "undisturbed" / name)), name
    assert json.loads((tmp_path / "killed" / "links.json").read_text())["search"]["product"] == "cpu-float32"


def test_a_shard_out_of_tries_stops_the_link_in_one_line(tmp_path, ray_local, monkeypatch, capsys):
    """Once a shard has lost its actor on each of its tries the link stops with exit 1 and one line on stderr
    naming the shard, its tries and what to do; Ray's error and the traceback go to the log file only."""
    emb = _write(str(tmp_path / "emb"), reprint_groups(30_000, 16, seed=8))
    killed: list[int] = []
    _killing_search(monkeypatch, killed, tries=1)
    monkeypatch.setattr("clippings.progress.PLAIN_EVERY_S", float("inf"))  # no progress line on a slow machine
    capsys.readouterr()
    code = main(["link", "--embeddings", emb, "--out", str(tmp_path / "o"), "--threshold", str(T), "--index", "ivf",
                 "--nprobe", "4", "--search-actors", "2", "--index-dir", str(tmp_path / "index")])
    out, err = capsys.readouterr()
    assert code == 1 and killed
    assert re.fullmatch(r"clippings link: error: search shard \d+ of \d+ \(cells \d+–\d+\) lost its search actor "
                        r"in its only try \(the last actor died\); if machines were pre-empted, run the link "
                        r"again; .*--search-actors.*\n", err), err
    assert "Traceback" not in out and re.search(r"link: stopped after .*; the log \S+ ends with the cause", out), out
    log = (tmp_path / "o" / "link.log").read_text()
    assert "ActorDiedError" in log and "RunFailed" in log
    assert not os.listdir(tmp_path / "index")  # the lists are removed after a failed search too


def test_a_lost_shard_is_retried_until_its_tries_are_spent(caplog):
    """Each loss of a shard's actor before its last try is one warning naming the try to come; the loss on
    its last try is RunFailed naming the shard, its cells and its tries, with Ray's error as the cause."""
    import logging

    from ray.exceptions import ActorDiedError

    from clippings.errors import RunFailed
    from clippings.link.actors import Shard, log, retry_or_fail

    shard, error = Shard(4, [(40, 45), (45, 52)]), ActorDiedError()
    log.addHandler(caplog.handler)  # the clippings loggers do not propagate to the root once a stage has run
    try:
        for tries in (1, 2):
            shard.tries = tries
            assert retry_or_fail(shard, 16, 3, error) is shard
            assert caplog.records[-1].levelno == logging.WARNING
            assert caplog.messages[-1] == ("link: search shard 4 of 16 lost its actor (it died); running it again on "
                                           f"a new one (try {tries + 1} of 3)")
        shard.tries, logged = 3, len(caplog.records)
        with pytest.raises(RunFailed, match=r"^search shard 4 of 16 \(cells 40–51\) lost its search actor in each "
                                            r"of its 3 tries \(the last actor died\); ") as failed:
            retry_or_fail(shard, 16, 3, error)
    finally:
        log.removeHandler(caplog.handler)
    assert failed.value.__cause__ is error and len(caplog.records) == logged  # the end is the error, not a warning
