"""The link stage as functions over data: embeddings → graph → MST → clusters, and the links folder.

`link_embeddings` does no I/O; `write_links` writes `mst.parquet`, `clusters.parquet` and `links.json`
(design.md §4); `read_links`/`recut` re-cut a saved MST at another threshold without recomputing.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from clippings.archive import (
    CLUSTERS_SCHEMA,
    MST_SCHEMA,
    join,
    read_json,
    read_part,
    write_json,
    write_table_atomic,
)
from clippings.embeddings import Embeddings
from clippings.errors import BadInput
from clippings.link.knn import knn_graph
from clippings.link.slink import Mst, cut_mst, mst_from_graph

CHAIN_FACTOR = 2.0
"""A cluster whose angular radius exceeds CHAIN_FACTOR × arccos(1 − t) was probably chained together."""


@dataclass
class LinkResult:
    """ids (n,), the MST over them, each id's cluster id, and the links.json record."""

    ids: np.ndarray
    mst: Mst
    cluster_ids: np.ndarray
    info: dict


def link_embeddings(
    emb: Embeddings,
    threshold: float,
    im_wt: float,
    k: int = 20,
    index: str = "flat",
    nlist: int | None = None,
    nprobe: int | None = None,
) -> LinkResult:
    """Single-linkage clusters of the pooled embeddings at `threshold` (linked when distance ≤ threshold).

    emb: both towers (see clippings.embeddings). im_wt: image weight w of the pooled vector. k: neighbours
    per point. index: "flat" (exact), "ivf" (approximate, recall reported) or "pruned" (exact ε-graph).
    Cost: see clippings.link.knn.knn_graph; MST and cut O(n·k log n); memory O(n·d + n·k).
    """
    start = time.perf_counter()
    vectors = emb.pooled(im_wt)
    graph = knn_graph(vectors, k=k, threshold=threshold, index=index, nlist=nlist, nprobe=nprobe)
    t0 = time.perf_counter()
    mst = mst_from_graph(graph.n, graph.src, graph.dst, graph.distance)
    cluster_ids = cut_mst(emb.ids, mst, threshold)
    mst_s = time.perf_counter() - t0
    info = {
        "threshold": float(threshold),
        "im_wt": float(im_wt),
        "k": int(k),
        "index": graph.index,
        "exact_up_to": float(graph.exact_up_to),
        "recall": graph.recall,
        "fingerprint": emb.fingerprint,
        "model_name": emb.model_name,
        "counts": {
            "clippings": int(len(emb.ids)),
            "graph_edges": int(len(graph.src)),
            "mst_edges": int(len(mst.src)),
            "saturated": graph.stats.get("saturated", 0),
        },
        "graph": {key: v for key, v in graph.stats.items() if key not in ("timings", "edges", "saturated")},
        "timings": {
            **graph.stats.get("timings", {}),
            "mst_cut_s": round(mst_s, 3),
            "total_s": round(time.perf_counter() - start, 3),
        },
    }
    info["diagnostics"] = diagnostics(vectors, cluster_ids, threshold)
    info["counts"]["clusters"] = info["diagnostics"]["clusters"]
    return LinkResult(emb.ids, mst, cluster_ids, info)


def diagnostics(vectors: np.ndarray, cluster_ids: np.ndarray, threshold: float, largest: int = 10) -> dict:
    """Cluster-size histogram, the largest clusters with their angular radius, and chaining warnings.

    Single linkage can chain distinct clippings through intermediates; a cluster whose members lie far
    from its centroid (radius > CHAIN_FACTOR × the angle of t) is flagged. Cost: O(n) plus the members of
    the `largest` clusters.
    """
    _, inverse, sizes = np.unique(cluster_ids, return_inverse=True, return_counts=True)
    hist = size_histogram(sizes)
    alpha = math.degrees(math.acos(max(-1.0, 1.0 - threshold)))
    top = []
    warnings = []
    for c in np.argsort(-sizes, kind="stable")[:largest]:
        if sizes[c] < 2:
            break
        members = vectors[inverse == c].astype(np.float64)
        centroid = members.sum(axis=0)
        centroid /= max(np.linalg.norm(centroid), 1e-300)
        cos = members @ centroid / np.maximum(np.linalg.norm(members, axis=1), 1e-300)
        radius = math.degrees(math.acos(float(np.clip(cos.min(), -1.0, 1.0))))
        cid = str(cluster_ids[np.argmax(inverse == c)])
        top.append({"cluster_id": cid, "size": int(sizes[c]), "radius_deg": round(radius, 2)})
        if radius > CHAIN_FACTOR * alpha:
            warnings.append(
                f"cluster {cid!r} ({sizes[c]} members) has angular radius {radius:.1f}° > "
                f"{CHAIN_FACTOR:g} × {alpha:.1f}° (the angle of t): likely chaining; inspect it or "
                "lower the threshold"
            )
    return {
        "clusters": int(len(sizes)),
        "size_histogram": hist,
        "largest": top,
        "chaining_warnings": warnings,
    }


def size_histogram(sizes: np.ndarray) -> dict[str, int]:
    """How many clusters have 1, 2, 3-5, 6-10, 11-100, 101-1000 and more members."""
    edges = [1, 2, 3, 6, 11, 101, 1001]
    names = ["1", "2", "3-5", "6-10", "11-100", "101-1000", ">1000"]
    return {
        name: int(((sizes >= lo) & (sizes < hi)).sum())
        for name, lo, hi in zip(names, edges, edges[1:] + [math.inf], strict=True)
    }


def write_links(out: str, result: LinkResult) -> None:
    """Write mst.parquet, clusters.parquet (sorted by clipping_id) and links.json into `out`, each atomically."""
    ids = np.asarray(result.ids, dtype=object)
    mst = pa.table(
        {
            "src": pa.array(ids[result.mst.src].tolist(), pa.string()),
            "dst": pa.array(ids[result.mst.dst].tolist(), pa.string()),
            "distance": pa.array(result.mst.distance, pa.float64()),
        },
        schema=MST_SCHEMA,
    )
    _, inverse, sizes = np.unique(result.cluster_ids, return_inverse=True, return_counts=True)
    order = np.argsort(ids.astype(str), kind="stable")
    clusters = pa.table(
        {
            "clipping_id": pa.array(ids[order].tolist(), pa.string()),
            "cluster_id": pa.array(np.asarray(result.cluster_ids, dtype=object)[order].tolist(), pa.string()),
            "cluster_size": pa.array(sizes[inverse][order].astype(np.int64)),
        },
        schema=CLUSTERS_SCHEMA,
    )
    write_table_atomic(mst, join(out, "mst.parquet"))
    write_table_atomic(clusters, join(out, "clusters.parquet"))
    write_json(join(out, "links.json"), result.info)


def read_links(links: str) -> tuple[np.ndarray, Mst, dict]:
    """(ids, MST, links.json) of a links folder; ids are those of clusters.parquet (singletons included)."""
    info = read_json(join(links, "links.json"))
    clusters = read_part(join(links, "clusters.parquet"), "links", columns=["clipping_id"])
    mst_table = read_part(join(links, "mst.parquet"), "links", columns=["src", "dst", "distance"])
    ids = np.asarray(clusters.column("clipping_id").to_pylist(), dtype=object)
    position = {cid: i for i, cid in enumerate(ids.tolist())}
    try:
        src = np.fromiter(
            (position[c] for c in mst_table.column("src").to_pylist()), np.int64, mst_table.num_rows
        )
        dst = np.fromiter(
            (position[c] for c in mst_table.column("dst").to_pylist()), np.int64, mst_table.num_rows
        )
    except KeyError as e:
        raise BadInput(
            f"links {links}: mst.parquet names clipping_id {e.args[0]!r} that clusters.parquet lacks; "
            "the folder is inconsistent: re-run 'clippings link'"
        ) from e
    distance = mst_table.column("distance").to_numpy().astype(np.float64)
    order = np.lexsort((dst, src, distance))
    return ids, Mst(len(ids), src[order], dst[order], distance[order]), info


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
    new["counts"] = {**info.get("counts", {}), "clusters": int(len(sizes))}
    new["diagnostics"] = {
        "clusters": int(len(sizes)),
        "size_histogram": size_histogram(sizes),
        "note": "re-cut from a saved MST: no vectors, so no radii or chaining check",
    }
    return LinkResult(ids, mst, cluster_ids, new)
