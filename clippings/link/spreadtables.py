"""A spread link's `clusters.parquet` and `mst.parquet`, made in Ray tasks: no id passes through the driver.

Ids stay in the object store, in the parts the read pass returned them in (row order). Three shuffles, each
a task per piece with one result per destination (Ray's `num_returns`), never one object per row:
1. id ranges (right after reading, so a repeated id stops the link before the search): each part splits its
   ids at R − 1 splitters taken from the sample rows' ids; each range sorts what it gets and refuses a
   repeated id. A range holds (clipping_id, row), sorted by id: the order clusters.parquet is written in.
2. names (after the cut): a cluster's name is its smallest member id (clippings.link.slink.stable_cluster_ids),
   that is the first id of the lowest range holding a member. Each range sends, per component it holds, its
   first id to the component's bucket (component mod B); each bucket keeps the lowest range's and sends the
   name back to every range that holds the component. The buckets also return the largest clusters' names
   for the report.
3. MST ids: the ForestMerger (clippings.link.merger) says which MST endpoints each part holds; each part
   sends their ids to the MST chunk they belong to, and each chunk becomes one row group of mst.parquet, in
   the MST's order.
A task on the driver's machine (anywhere when the links folder is on S3) writes the tables, one range or chunk
at a time (storage.write_tables_atomic): its memory is one range's rows, however many rows the link has, and
the driver's none. Objects: P·R + 2·R·B + P·C for P parts, R ranges, B = R
buckets and C MST chunks.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from clippings.archive import CLUSTERS_SCHEMA, MST_SCHEMA
from clippings.link.store import CLUSTERS, MST, VectorRows
from clippings.raylocal import get, task
from clippings.storage import join, write_tables_atomic

MAX_RANGES = 64
"""At most this many id ranges (and name buckets): the objects of the shuffles grow as their square."""
MST_CHUNK = 1 << 18
"""MST edges per chunk (one row group of mst.parquet, held by the driver while it writes it)."""


def _results(pieces: list) -> Any:
    """What a task with num_returns = len(pieces) returns: the pieces, or the one piece itself."""
    return tuple(pieces) if len(pieces) > 1 else pieces[0]


def _listed(refs: Any, count: int) -> list:
    """The refs of a call with num_returns = count as a list (Ray gives one ref itself, not in a list)."""
    return refs if count > 1 else [refs]


def id_splitters(sample: pa.Array, ranges: int) -> list[str]:
    """Up to `ranges` − 1 ascending, distinct ids that cut the sorted `sample` into `ranges` equal runs."""
    values = pc.unique(sample)
    values = values.take(pc.sort_indices(values))
    picks = [values[len(values) * k // ranges].as_py() for k in range(1, ranges)] if len(values) else []
    return sorted(set(picks))


def split_ids(ids: pa.Array, first: int, splitters: list[str]) -> Any:
    """One part's ids (rows first, first + 1, …) split at `splitters`: per range, (clipping_id, row) sorted
    by id."""
    order = pc.sort_indices(ids)
    ordered = ids.take(order)
    cuts = [0, *(int(pc.sum(pc.less(ordered, s)).as_py() or 0) for s in splitters), len(ids)]
    rows = order.to_numpy().astype(np.int64) + first
    return _results([pa.table({"clipping_id": ordered[a:b], "row": pa.array(rows[a:b])})
                     for a, b in zip(cuts, cuts[1:], strict=False)])


def id_range(path: str, *pieces: pa.Table) -> tuple[pa.Table, int]:
    """One id range from every part's piece: (clipping_id, row) sorted by id, and its count. A repeated id is
    BadInput naming the embeddings `path`."""
    from clippings.embeddings import check_unique

    table = pa.concat_tables(pieces)
    table = table.take(pc.sort_indices(table.column("clipping_id"))).combine_chunks()
    check_unique(table.column("clipping_id"), path)
    return table, table.num_rows


def name_range(table: pa.Table, labels: np.ndarray, buckets: int) -> Any:
    """Pass 2's first step on one range: per bucket, (label, name) of the components the range holds, with
    each one's first id in the range."""
    lab = labels[table.column("row").to_numpy()]
    uniq, first = np.unique(lab, return_index=True)
    names = table.column("clipping_id").take(pa.array(first))
    bucket = uniq % buckets
    return _results([pa.table({"label": pa.array(uniq[keep].astype(np.int64)), "name": names.take(pa.array(keep))})
                     for keep in (np.flatnonzero(bucket == b) for b in range(buckets))])


def bucket_names(sizes: np.ndarray, floor: int, largest: int, *pieces: pa.Table) -> tuple:
    """Pass 2's second step on one bucket: pieces[r] is range r's (label, first id in r). Returns, per range,
    (label, name) of the components it holds, sorted by label; then (label, name, size) of the `largest`
    components from size `floor`, by size and name."""
    label = np.concatenate([p.column("label").to_numpy() for p in pieces])
    where = np.repeat(np.arange(len(pieces)), [p.num_rows for p in pieces])
    names = pa.concat_arrays([p.column("name").combine_chunks() for p in pieces]) if pieces else pa.array([], pa.string())
    order = np.lexsort((where, label))
    ordered = label[order]
    starts = np.r_[True, ordered[1:] != ordered[:-1]] if len(ordered) else np.zeros(0, bool)
    winner = order[starts]  # each component's entry from its lowest range: its smallest id
    named = names.take(pa.array(winner[np.cumsum(starts) - 1]))
    came_from = where[order]
    out = [pa.table({"label": pa.array(ordered[keep]), "name": named.take(pa.array(keep))})
           for keep in (np.flatnonzero(came_from == r) for r in range(len(pieces)))]
    owners = ordered[starts]
    big = np.flatnonzero(sizes[owners] >= floor)
    top = pa.table({"label": pa.array(owners[big]), "name": names.take(pa.array(winner[big])),
                    "size": pa.array(sizes[owners[big]].astype(np.int64))})
    out.append(top.sort_by([("size", "descending"), ("name", "ascending")]).slice(0, largest))
    return tuple(out)


def clusters_range(table: pa.Table, labels: np.ndarray, sizes: np.ndarray, *names: pa.Table) -> pa.Table:
    """One range's rows of clusters.parquet (clipping_id order) from its components' names."""
    named = pa.concat_tables(names)
    named = named.take(pc.sort_indices(named.column("label")))
    lab = labels[table.column("row").to_numpy()]
    at = np.searchsorted(named.column("label").to_numpy(), lab)
    return pa.table({"clipping_id": table.column("clipping_id"),
                     "cluster_id": named.column("name").take(pa.array(at)),
                     "cluster_size": pa.array(sizes[lab].astype(np.int64))}, schema=CLUSTERS_SCHEMA)


def mst_part_ids(ids: pa.Array, request: tuple[np.ndarray, np.ndarray], chunk: int, chunks: int) -> Any:
    """Pass 3 on one part: the ids of the MST endpoints it holds (request: their places and rows, from
    ForestMerger.mst_requests), per chunk as (place in the chunk, clipping_id)."""
    places, rows = request
    cuts = np.searchsorted(places, 2 * chunk * np.arange(chunks + 1))
    taken = ids.take(pa.array(rows))
    return _results([pa.table({"place": pa.array(places[a:b] - 2 * chunk * c), "id": taken[a:b]})
                     for c, (a, b) in enumerate(zip(cuts, cuts[1:], strict=False))])


def mst_chunk(distance: np.ndarray, *pieces: pa.Table) -> pa.Table:
    """One chunk of mst.parquet: every part's ids for its endpoints, put in place."""
    table = pa.concat_tables(pieces)
    ids = table.column("id").take(pc.sort_indices(table.column("place")))
    m = len(distance)
    return pa.table({"src": ids.take(pa.array(np.arange(0, 2 * m, 2))), "dst": ids.take(pa.array(np.arange(1, 2 * m, 2))),
                     "distance": pa.array(distance, pa.float64())}, schema=MST_SCHEMA)


def id_ranges(path: str, id_refs: list, firsts: list[int], sample_ids: pa.Array) -> list:
    """Shuffle 1 (the module docstring): the ids in ranges, each sorted; waits until every range is
    checked, so a repeated id stops the link here (BadInput). Returns the ranges' refs."""
    splitters = id_splitters(sample_ids, min(MAX_RANGES, len(id_refs)))
    count = len(splitters) + 1
    pieces = [_listed(task(split_ids).options(num_returns=count).remote(ids, firsts[p], splitters), count)
              for p, ids in enumerate(id_refs)]
    calls = [task(id_range).options(num_returns=2).remote(path, *(piece[r] for piece in pieces))
             for r in range(count)]
    get([rows for _, rows in calls])
    return [table for table, _ in calls]


def component_names(ranges: list, labels: Any, sizes: Any, floor: int, largest: int
                    ) -> tuple[list[list], list[tuple[str, int, int]]]:
    """Shuffle 2 (the module docstring): per range, the refs of its components' names (one per bucket),
    and (name, component, size) of the `largest` components from size `floor`, by size then name. labels,
    sizes: refs of each row's component and each component's size (ForestMerger)."""
    count = len(ranges)
    sent = [_listed(task(name_range).options(num_returns=count).remote(table, labels, count), count)
            for table in ranges]
    back = [task(bucket_names).options(num_returns=count + 1).remote(sizes, floor, largest, *(s[b] for s in sent))
            for b in range(count)]
    tops = pa.concat_tables(get([b[count] for b in back]))
    tops = tops.sort_by([("size", "descending"), ("name", "ascending")]).slice(0, largest).to_pylist()
    return [[b[r] for b in back] for r in range(count)], [(t["name"], t["label"], t["size"]) for t in tops]


@dataclass
class SpreadTables:
    """A spread link's result (clippings.link.pipeline.TableSource): links.json's record, the vectors to carry,
    and what writes its tables: the id ranges, every range's component names (per bucket), the parts' ids,
    the refs of each row's component and each component's size, and the ForestMerger holding the MST."""

    info: dict
    vectors: VectorRows
    ranges: list
    names: list[list]
    id_refs: list
    firsts: list[int]
    labels: Any
    sizes: Any
    merger: Any
    mst_edges: int
    changes: None = None

    def write_tables(self, folder: str) -> None:
        """Write mst.parquet and clusters.parquet into `folder`, one chunk or range at a time."""
        chunks = max(1, -(-self.mst_edges // MST_CHUNK))
        requests = _listed(self.merger.mst_requests.options(num_returns=len(self.id_refs)).remote(self.firsts),
                           len(self.id_refs))
        distances = _listed(self.merger.mst_distances.options(num_returns=chunks).remote(MST_CHUNK), chunks)
        parts = [_listed(task(mst_part_ids).options(num_returns=chunks).remote(ids, request, MST_CHUNK, chunks),
                         chunks) for ids, request in zip(self.id_refs, requests, strict=True)]
        chunk_refs = [task(mst_chunk).remote(d, *(p[c] for p in parts)) for c, d in enumerate(distances)]
        range_refs = [task(clusters_range).remote(table, self.labels, self.sizes, *names)
                      for table, names in zip(self.ranges, self.names, strict=True)]
        writer = task(write_streamed, cpus=0).options(scheduling_strategy=_beside_driver(folder))
        get(writer.remote(folder, chunk_refs, range_refs))  # in lists, the refs reach it unresolved


def write_streamed(folder: str, chunks: list, ranges: list) -> None:
    """mst.parquet from the MST chunks and clusters.parquet from the id ranges (refs, in order), each fetched
    when its turn comes; in a task, so the pages of the fetched objects are not the driver's."""
    write_tables_atomic(join(folder, MST), MST_SCHEMA, _fetched(chunks))
    write_tables_atomic(join(folder, CLUSTERS), CLUSTERS_SCHEMA, _fetched(ranges))


def _beside_driver(folder: str) -> Any:
    """Where the tables' writer runs: a local folder is the driver's machine's, so there; else anywhere."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from clippings.storage import is_remote

    if is_remote(folder):
        return "DEFAULT"
    return NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)


def _fetched(refs: list) -> Iterator[pa.Table]:
    """The values of `refs` in order, each fetched when wanted and let go once passed on."""
    while refs:
        yield get(refs.pop(0))
