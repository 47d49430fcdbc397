"""The link stage as functions over data: embeddings → graph → MST → clusters, and the links folder.

`link_embeddings` does no I/O; `write_links` writes a whole links folder at once
(docs/architecture.md#data-contract): `mst.parquet`, `clusters.parquet`, `links.json`, the pooled vectors a
later `link --add` searches (clippings.link.store), `changes.parquet` after an add, `_quarantine/`;
`read_links`/`recut` re-cut a saved MST at another threshold without recomputing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from clippings.archive import CLUSTERS_SCHEMA, MST_SCHEMA, write_quarantine
from clippings.embeddings import Embeddings, Pooled
from clippings.errors import BadInput
from clippings.link.knn import knn_graph
from clippings.link.slink import Mst, cut_mst, mst_from_graph
from clippings.link.store import (
    CLUSTERS,
    MST,
    VECTORS,
    VectorRows,
    require_complete,
    staged_folder,
    write_vectors,
)
from clippings.storage import exists, join, read_json, read_part, write_json, write_table_atomic

if TYPE_CHECKING:
    from clippings.link.actors import SearchPool
    from clippings.link.cells import PartLists
    from clippings.link.graph import Graph

CHAIN_FACTOR = 2.0
"""A cluster whose angular radius exceeds CHAIN_FACTOR × arccos(1 − t) was probably chained together."""


@dataclass
class LinkResult:
    """ids (n,), the MST over them, each id's cluster id, and the links.json record; the pooled vectors to
    persist for `link --add` (None: none to keep), and after an add the clusters it touched."""

    ids: np.ndarray | pa.Array
    mst: Mst
    cluster_ids: np.ndarray | pa.Array
    info: dict
    vectors: VectorRows | None = None
    changes: pa.Table | None = None

    def write_tables(self, folder: str) -> None:
        """Write mst.parquet and clusters.parquet (sorted by clipping_id) into `folder`. Cost: O(n log n) for
        the sort."""
        ids = strings(self.ids)
        mst = pa.table(
            {
                "src": ids.take(pa.array(self.mst.src)),
                "dst": ids.take(pa.array(self.mst.dst)),
                "distance": pa.array(self.mst.distance, pa.float64()),
            },
            schema=MST_SCHEMA,
        )
        write_table_atomic(mst, join(folder, MST))
        cluster_ids = strings(self.cluster_ids)
        codes = cluster_ids.dictionary_encode().indices.to_numpy()
        clusters = pa.table(
            {
                "clipping_id": ids,
                "cluster_id": cluster_ids,
                "cluster_size": pa.array(np.bincount(codes)[codes].astype(np.int64)),
            },
            schema=CLUSTERS_SCHEMA,
        ).take(pc.sort_indices(ids))
        write_table_atomic(clusters, join(folder, CLUSTERS))


class TableSource(Protocol):
    """A link's result whose tables are written by their own means (a spread link's, streamed from tasks)."""

    info: dict
    vectors: VectorRows | None
    changes: pa.Table | None

    def write_tables(self, folder: str) -> None: ...


def link_embeddings(
    emb: Embeddings | Pooled,
    threshold: float,
    im_wt: float,
    k: int = 20,
    index: str = "flat",
    nlist: int | None = None,
    nprobe: int | None = None,
    progress: Callable[[int], None] | None = None,
    search_actors: int = 0,
    index_dir: str | None = None,
    gpu: bool | None = None,
) -> LinkResult:
    """Single-linkage clusters of the pooled embeddings at `threshold` (linked when distance ≤ threshold).

    emb: both towers (see clippings.embeddings). im_wt: image weight w of the pooled vector. k: neighbours
    per point. index: "flat" (exact), "ivf" (approximate, recall reported) or "pruned" (exact ε-graph).
    progress: told the points queried by the kNN search as it goes (flat and ivf).
    search_actors, index_dir: ivf only: the range search on this many Ray actors, which load the index from
    `index_dir`. gpu: the search on GPUs (see clippings.link.knn.knn_graph).
    Cost: see clippings.link.knn.knn_graph; MST and cut O(n·k log n); memory O(n·d + n·k).
    """
    start = time.perf_counter()
    vectors = emb.pooled(im_wt)
    graph = knn_graph(vectors, k=k, threshold=threshold, index=index, nlist=nlist, nprobe=nprobe,
                      progress=progress, search_actors=search_actors, index_dir=index_dir,
                      gpu=gpu)
    result = link_graph(emb.ids, graph, vectors, int(vectors.shape[1]), threshold, im_wt, k, emb.fingerprint,
                        emb.model_name, start)
    result.vectors = VectorRows(emb.ids, vectors, graph.cells)
    return result


def link_graph(ids: np.ndarray | pa.Array, graph: Graph, vectors: np.ndarray | PartLists | SearchPool, dim: int,
               threshold: float, im_wt: float, k: int, fingerprint: str, model_name: str, start: float
               ) -> LinkResult:
    """The LinkResult of a search's graph over rows `ids`: its MST cut at `threshold`, and the links.json
    record (`start`: when the link began, perf_counter). vectors: the rows' vectors, indexable by an array of
    row numbers (the diagnostics read the largest clusters'); no vectors to persist (the caller's to set)."""
    t0 = time.perf_counter()
    mst = mst_from_graph(graph.n, graph.src, graph.dst, graph.distance)
    cluster_ids = cut_mst(ids, mst, threshold)
    mst_s = time.perf_counter() - t0
    info = link_info(graph, len(graph.src), len(mst.src), dim, threshold, im_wt, k, fingerprint, model_name,
                     mst_s, start, diagnostics(vectors, cluster_ids, threshold))
    return LinkResult(ids, mst, cluster_ids, info)


def link_info(graph: Graph, graph_edges: int, mst_edges: int, dim: int, threshold: float, im_wt: float, k: int,
              fingerprint: str, model_name: str, mst_s: float, start: float, report: dict) -> dict:
    """The links.json record of a link over `graph` (its edges: `graph_edges`, which a spread link's driver
    never holds), with its clusters' report (cluster_report) as the diagnostics."""
    return {
        "threshold": float(threshold),
        "im_wt": float(im_wt),
        "k": int(k),
        "index": graph.index,
        "exact_up_to": float(graph.exact_up_to),
        "recall": graph.recall,
        "search": {
            **graph.stats.get("search", {"backend": "numpy", "actors": 0}),
            "nlist": graph.stats.get("nlist"),
            "nprobe": graph.stats.get("nprobe"),
        },
        "fingerprint": fingerprint,
        "model_name": model_name,
        "vectors": {"rows": int(graph.n), "dim": int(dim)},
        "counts": {
            "clippings": int(graph.n),
            "graph_edges": int(graph_edges),
            "mst_edges": int(mst_edges),
            "saturated": graph.stats.get("saturated", 0),
            "clusters": report["clusters"],
        },
        "graph": {
            key: v for key, v in graph.stats.items() if key not in ("timings", "edges", "saturated", "search")
        },
        "timings": {
            **graph.stats.get("timings", {}),
            "mst_cut_s": round(mst_s, 3),
            "total_s": round(time.perf_counter() - start, 3),
        },
        "diagnostics": report,
    }


def diagnostics(vectors: np.ndarray | PartLists | SearchPool, cluster_ids: np.ndarray, threshold: float, largest: int = 10
                ) -> dict:
    """cluster_report of these clusters: their sizes, and the `largest` ones' radii from their members'
    vectors (indexable by an array of row numbers). Cost: O(n) plus the members of the `largest` clusters."""
    enc = strings(cluster_ids).dictionary_encode()  # hashing, not a sort of n strings
    inverse = enc.indices.to_numpy()
    sizes = np.bincount(inverse, minlength=len(enc.dictionary))
    big = np.flatnonzero(sizes >= size_floor(sizes, largest))
    names = enc.dictionary.take(pa.array(big)).to_pylist()
    ranked = sorted(zip(names, big.tolist(), strict=True), key=lambda pair: (-sizes[pair[1]], pair[0]))[:largest]
    return cluster_report(len(sizes), size_histogram(sizes), [(name, c, int(sizes[c])) for name, c in ranked],
                          lambda c: angular_radius(vectors[np.flatnonzero(inverse == c)]), threshold)


def size_floor(sizes: np.ndarray, largest: int) -> int:
    """The size from which a cluster may be among the `largest` (ties included), at least 2."""
    return max(2, int(np.partition(sizes, -largest)[-largest]) if len(sizes) > largest else 2)


def angular_radius(members: np.ndarray) -> float:
    """The largest angle (degrees) between a cluster's member vectors and their mean direction."""
    members = members.astype(np.float64)
    centroid = members.sum(axis=0)
    centroid /= max(np.linalg.norm(centroid), 1e-300)
    cos = members @ centroid / np.maximum(np.linalg.norm(members, axis=1), 1e-300)
    return math.degrees(math.acos(float(np.clip(cos.min(), -1.0, 1.0))))


def cluster_report(clusters: int, histogram: dict[str, int], top: list[tuple[str, int, int]],
                   radius_of: Callable[[int], float], threshold: float) -> dict:
    """The clusters' count and size histogram (size_histogram), the largest clusters with their angular
    radius, and chaining warnings. top: (name, number, size) of the largest, by size then name; radius_of: a
    cluster's angular radius by number.

    Single linkage can chain distinct clippings through intermediates; a cluster whose members lie far
    from its centroid (radius > CHAIN_FACTOR × the angle of t) is flagged.
    """
    alpha = math.degrees(math.acos(max(-1.0, 1.0 - threshold)))
    largest, warnings = [], []
    for cid, c, size in top:
        radius = radius_of(c)
        largest.append({"cluster_id": cid, "size": int(size), "radius_deg": round(radius, 2)})
        if radius > CHAIN_FACTOR * alpha:
            warnings.append(
                f"cluster {cid!r} ({size} members) has angular radius {radius:.1f}° > "
                f"{CHAIN_FACTOR:g} × {alpha:.1f}° (the angle of t): likely chaining; inspect it or "
                "lower the threshold"
            )
    return {
        "clusters": int(clusters),
        "size_histogram": histogram,
        "largest": largest,
        "chaining_warnings": warnings,
    }


def strings(values: np.ndarray | pa.Array | pa.ChunkedArray) -> pa.Array:
    """Ids as one Arrow string array: as they are when Arrow already (a spread link's), else converted."""
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks()
    return values if isinstance(values, pa.Array) else pa.array(np.asarray(values, dtype=object), pa.string())


def size_histogram(sizes: np.ndarray) -> dict[str, int]:
    """How many clusters have 1, 2, 3-5, 6-10, 11-100, 101-1000 and more members."""
    edges = [1, 2, 3, 6, 11, 101, 1001]
    names = ["1", "2", "3-5", "6-10", "11-100", "101-1000", ">1000"]
    return {
        name: int(((sizes >= lo) & (sizes < hi)).sum())
        for name, lo, hi in zip(names, edges, edges[1:] + [math.inf], strict=True)
    }


def write_links(out: str, result: LinkResult | TableSource, quarantine: pa.Table | None = None) -> None:
    """Write the links folder `out` at once (clippings.link.store.staged_folder): the vectors, mst.parquet and
    clusters.parquet (result.write_tables), changes.parquet (after an add), the quarantine rows, and
    links.json last. The vectors cost O(m·d) for the m rows not carried."""
    with staged_folder(out) as folder:
        if result.vectors is not None:
            write_vectors(folder, result.vectors)
        result.write_tables(folder)
        if result.changes is not None:
            write_table_atomic(result.changes, join(folder, "changes.parquet"))
        if quarantine is not None:
            write_quarantine(folder, quarantine, "part-00000.parquet")
        write_json(join(folder, "links.json"), result.info)


def positions(names: pa.Array | pa.ChunkedArray, ids: pa.Array | pa.ChunkedArray, links: str,
              names_from: str = "mst.parquet", ids_from: str = "the folder's clippings") -> np.ndarray:
    """Row number in `ids` of each clipping id in `names` (a hash join: O(n)); an unknown id is BadInput,
    naming the files the two lists come from."""
    found = pc.index_in(names, value_set=ids)
    if found.null_count:
        missing = names.filter(pc.is_null(found))[0].as_py()
        raise BadInput(
            f"links {links}: {names_from} names clipping_id {missing!r}, absent from {ids_from}; "
            "the folder is inconsistent: re-run 'clippings link'"
        )
    return found.to_numpy().astype(np.int64)


def read_mst(links: str, ids: np.ndarray) -> Mst:
    """The saved MST of a links folder, as row numbers into `ids`, sorted by (distance, src, dst)."""
    table = read_part(join(links, MST), "links", columns=["src", "dst", "distance"])
    known = pa.array(ids, pa.string())
    src = positions(table.column("src"), known, links)
    dst = positions(table.column("dst"), known, links)
    a, b = np.minimum(src, dst), np.maximum(src, dst)
    distance = table.column("distance").to_numpy().astype(np.float64)
    order = np.lexsort((b, a, distance))
    return Mst(len(ids), a[order], b[order], distance[order])


def read_links(links: str) -> tuple[np.ndarray, Mst, dict]:
    """(ids, MST, links.json) of a links folder; ids are those of clusters.parquet (singletons included)."""
    require_complete(links)
    info = read_json(join(links, "links.json"))
    clusters = read_part(join(links, CLUSTERS), "links", columns=["clipping_id"])
    ids = clusters.column("clipping_id").to_numpy(zero_copy_only=False).astype(object)
    return ids, read_mst(links, ids), info


def recut(links: str, threshold: float) -> LinkResult:
    """Re-cut a saved MST at `threshold` (no kNN search). Refuses thresholds above its exact_up_to."""
    start = time.perf_counter()
    ids, mst, info = read_links(links)
    exact = float(info.get("exact_up_to", 0.0))
    if threshold > exact:
        raise BadInput(
            f"links {links}: threshold {threshold} is above exact_up_to {exact} of its MST; re-cut at "
            f"≤ {exact} or re-run 'clippings link --embeddings ...' at the new threshold"
        )
    cluster_ids = cut_mst(ids, mst, threshold)
    sizes = np.unique(cluster_ids, return_counts=True)[1]
    new = {
        **info,
        "threshold": float(threshold),
        "recut_from": links,
        "timings": {"recut_s": round(time.perf_counter() - start, 3)},
    }
    new.pop("auto", None)  # a label-free choice describes the cut it made, not this one
    new["counts"] = {**info.get("counts", {}), "clusters": int(len(sizes))}
    new["diagnostics"] = {
        "clusters": int(len(sizes)),
        "size_histogram": size_histogram(sizes),
        "note": "re-cut from a saved MST: no vectors, so no radii or chaining check",
    }
    # the re-cut folder keeps the vectors (carried, not rewritten), so it can take a batch too
    keep = VectorRows(np.empty(0, object), np.empty((0, 0), np.float32), carry=links) if exists(
        join(links, VECTORS)
    ) else None
    return LinkResult(ids, mst, cluster_ids, new, keep)
