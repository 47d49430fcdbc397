"""The ivf link spread over Ray (clippings.link.spread): every pass over the rows in tasks part by part, the
lists as per-part files; the clusters and the MST are those of a link in one process, row for row."""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow.parquet as pq
import pytest

from clippings.cli import main
from clippings.embeddings import embeddings_table
from clippings.link.cellfile import cell_layout, in_memory_lists
from clippings.link.cells import PartLists, PartProbes, invert_probes
from clippings.storage import filesystem, join, makedirs, write_table_atomic
from tests.test_link_actors import T, _write, reprint_groups

N = 200_000


def _probe_table(n: int, nlist: int, nprobe: int, seed: int) -> np.ndarray:
    """A probe table like probe_cells': distinct cells per row, own cell first, some trailing −1."""
    rng = np.random.default_rng(seed)
    table = np.argsort(rng.random((n, nlist)), axis=1)[:, :nprobe].astype(np.int32)
    table[rng.random((n, nprobe)) < 0.3] = -1
    table[:, 0] = np.abs(table[:, 0])
    return table


def test_part_probes_and_lists_read_as_those_of_every_row():
    """Parts probed and sorted alone, read together: each batch of cells gives the same rows in the same
    order, and each row the same probes and vector, as the tables of all rows (what the search reads)."""
    n, nlist = 5_000, 40
    table = _probe_table(n, nlist, 4, seed=1)
    table[:, 0] = np.where(table[:, 0] < 0, 0, table[:, 0])
    x = np.random.default_rng(2).standard_normal((n, 8)).astype(np.float32)
    whole = invert_probes(table, nlist)
    bounds = [0, 1_200, 1_213, 3_100, n]  # a part of 13 rows among them
    tables, rows, starts, blocks = [], [], [], []
    for a, b in zip(bounds, bounds[1:], strict=False):
        part = invert_probes(table[a:b], nlist)
        tables.append(table[a:b])
        rows.append(part.rows + a)
        starts.append(part.starts)
        order, cell_starts = cell_layout(table[a:b, 0].astype(np.int64), nlist)
        blocks.append((x[a:b][order], order + a, cell_starts))
    probes = PartProbes(tables, rows, starts, whole.owners)
    for c0, c1 in ((0, nlist), (3, 7), (10, 11), (39, 40)):
        got, want = probes.batch(c0, c1), whole.batch(c0, c1)
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1]), (c0, c1)
    some = np.random.default_rng(3).integers(0, n, 500)
    assert np.array_equal(probes.cells_of(some), whole.cells_of(some))
    lists, one = PartLists.sorted_blocks(blocks), in_memory_lists(x, table[:, 0].astype(np.int64), nlist)
    for c in range(nlist):
        assert all(np.array_equal(a, b) for a, b in zip(lists.list(c), one.list(c), strict=True)), c
    assert np.array_equal(lists.take(some), x[some])


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    """200k rows in four parts, linked in one process with nprobe calibrated: (embeddings, args, links)."""
    tmp = tmp_path_factory.mktemp("spread")
    emb = _write(str(tmp / "emb"), reprint_groups(N, 32, seed=7))
    base = ["link", "--embeddings", emb, "--threshold", str(T), "--index", "ivf"]
    assert main([*base, "--out", str(tmp / "one")]) == 0
    return emb, base, str(tmp / "one")


def _same_links(spread: str, one: str) -> dict:
    """Assert the two links folders hold the same clusters and MST, row for row; the spread one's links.json."""
    for name in ("clusters.parquet", "mst.parquet"):
        assert pq.read_table(os.path.join(spread, name)).equals(pq.read_table(os.path.join(one, name))), name
    info, base = (json.loads(open(os.path.join(f, "links.json")).read()) for f in (spread, one))
    assert info["search"]["spread"] is True and "spread" not in base["search"]
    for key in ("nlist", "nprobe"):
        assert info["search"][key] == base["search"][key], key
    assert info["recall"] == base["recall"] and info["graph"]["probe_margin"] == base["graph"]["probe_margin"]
    same = ("clippings", "clusters", "mst_edges")  # graph_edges differ: each shard leaves as its forest
    assert [info["counts"][k] for k in same] == [base["counts"][k] for k in same]
    got, want = info["diagnostics"], base["diagnostics"]
    assert got["size_histogram"] == want["size_histogram"] and len(got["chaining_warnings"]) == len(
        want["chaining_warnings"])
    assert [(c["cluster_id"], c["size"]) for c in got["largest"]] == [(c["cluster_id"], c["size"]) for c in
                                                                       want["largest"]]
    # radii summed part by part: the same to rounding
    assert np.allclose([c["radius_deg"] for c in got["largest"]], [c["radius_deg"] for c in want["largest"]],
                       atol=0.011)
    return info


@pytest.mark.slow
@pytest.mark.parametrize("actors", [1, 2])
def test_a_spread_link_on_one_or_two_actors_is_the_one_process_link(one_process, actors, ray_local, tmp_path):
    emb, base, one = one_process
    index = tmp_path / "index"
    assert main([*base, "--out", str(tmp_path / "spread"), "--search-actors", str(actors),
                 "--index-dir", str(index)]) == 0
    info = _same_links(str(tmp_path / "spread"), one)
    assert info["search"]["actors"] == actors and info["search"]["product"] == "cpu-float32"
    assert set(info["timings"]) >= {"read_s", "probes_s", "search_s", "recall_s"}
    assert not os.listdir(index)  # the pooled rows and lists are removed once the links folder is written
    parts = sorted(os.listdir(tmp_path / "spread" / "vectors"))
    assert parts == ["centroids.arrow"] + [f"part-{k:05d}.arrow" for k in range(4)]  # one per embeddings part


@pytest.mark.slow
def test_a_spread_link_with_its_lists_on_s3_is_the_one_process_link(one_process, s3_bucket, ray_local, tmp_path):
    emb, base, one = one_process
    index = f"{s3_bucket}/index"
    assert main([*base, "--out", str(tmp_path / "spread"), "--search-actors", "2", "--index-dir", index]) == 0
    _same_links(str(tmp_path / "spread"), one)
    fs, inner = filesystem(index)
    assert not fs.exists(inner) or not fs.ls(inner)  # nothing of the link is left on S3


def test_a_spread_links_folder_takes_a_batch_as_a_one_process_one_does(ray_local, tmp_path):
    """`link --add` reads the per-part vectors a spread link carries into its links folder."""
    x = reprint_groups(20_000, 32, seed=9)
    _write(str(tmp_path / "old"), x[:18_000])
    _write(str(tmp_path / "new"), x[18_000:], first=18_000)
    for name, extra in (("one", []), ("spread", ["--search-actors", "2"])):
        links = str(tmp_path / name)
        assert main(["link", "--embeddings", str(tmp_path / "old"), "--out", links, "--threshold", str(T),
                     "--index", "ivf", "--nprobe", "6", *extra]) == 0
        assert main(["link", "--add", str(tmp_path / "new"), "--to", links, "--out", links + "-added"]) == 0
    one, spread = (pq.read_table(tmp_path / f"{name}-added" / "clusters.parquet") for name in ("one", "spread"))
    assert one.equals(spread)


@pytest.mark.parametrize("ranges, chunk", [(1, 1_000), (64, 1 << 18)])
def test_tables_made_in_tasks_are_those_of_one_process(ranges, chunk, monkeypatch, ray_local, tmp_path):
    """Ids in no particular order across three parts: one id range or one per part, the MST in one chunk or
    in chunks of 1,000 edges; clusters.parquet, mst.parquet and the report's largest clusters as one
    process writes them."""
    from clippings.link import spreadtables
    from clippings.storage import write_dataset

    monkeypatch.setattr(spreadtables, "MAX_RANGES", ranges)
    monkeypatch.setattr(spreadtables, "MST_CHUNK", chunk)
    x = reprint_groups(12_000, 16, seed=5)
    names = [f"{'ab'[i % 2]}{v:06d}" for i, v in enumerate(np.random.default_rng(4).permutation(12_000))]
    write_dataset(embeddings_table(names, x, x, "tiny@abc", "tiny"), str(tmp_path / "emb"), rows_per_part=5_000)
    base = ["link", "--embeddings", str(tmp_path / "emb"), "--threshold", str(T), "--index", "ivf", "--nprobe", "4"]
    assert main([*base, "--out", str(tmp_path / "one")]) == 0
    assert main([*base, "--out", str(tmp_path / "spread"), "--search-actors", "2"]) == 0
    info = _same_links(str(tmp_path / "spread"), str(tmp_path / "one"))
    assert info["counts"]["mst_edges"] > chunk or chunk > 1_000  # the small chunk does split the MST


def _parts(path: str, tables: list) -> str:
    makedirs(path)
    for k, table in enumerate(tables):
        write_table_atomic(table, join(path, f"part-{k:05d}.parquet"))
    return path


@pytest.mark.parametrize("flaw, message", [
    ("repeated", "clipping_id 'c0000007' appears 2 times; ids must be unique: deduplicate the input"),
    ("nan", "image_emb of clipping_id 'c0001500' has NaN or infinite values; re-embed it or quarantine it"),
    ("model", "mixed model fingerprints"),
])
def test_a_flawed_embeddings_folder_is_refused_in_one_line(flaw, message, ray_local, tmp_path, capsys):
    """Every part is checked where it is read; what only the whole shows (an id in two parts, two models) is
    checked on the driver from what the parts return."""
    x = reprint_groups(3_000, 16, seed=3)
    ids = [f"c{i:07d}" for i in range(3_000)]
    if flaw == "repeated":
        ids[2_000] = ids[7]
    if flaw == "nan":
        x[1_500, 0] = np.nan
    first = embeddings_table(ids[:1_000], x[:1_000], x[:1_000], "tiny@abc", "tiny")
    rest = embeddings_table(ids[1_000:], x[1_000:], x[1_000:], "other@def" if flaw == "model" else "tiny@abc", "tiny")
    emb = _parts(str(tmp_path / "emb"), [first, rest])
    code = main(["link", "--embeddings", emb, "--out", str(tmp_path / "o"), "--threshold", str(T), "--index", "ivf",
                 "--search-actors", "2", "--index-dir", str(tmp_path / "index")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not os.listdir(tmp_path / "index")
