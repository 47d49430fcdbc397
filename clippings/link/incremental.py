"""Link a new batch into an existing linking exactly, searching only the new rows (`link --add`, §7).

By the cycle property, an edge that is the largest on a cycle of smaller edges is in no minimum spanning
forest, so the MST of every pair ≤ t over old ∪ new is the MST of (the old MST's edges ∪ every new–old and
new–new pair ≤ t). Only the m new rows are searched, against all n + m rows: exactly for flat and pruned
links (a FAISS flat range search, O(m·(n + m)·d)), or in the links' own IVF cells at their calibrated nprobe
for ivf links (the old rows are placed in their saved cells without a search; each new row probes its
nprobe nearest cells, its own first, as in clippings.link.cells; recall measured on a sample of the new
rows). The merged forest is exact up to min(old exact_up_to, t): only pairs ≤ t were searched.

Clusters keep the name of their smallest member, so a cluster no new row joined keeps its id; `changes`
lists every cluster a new row joined (its old cluster ids, how many new clippings, its size).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from clippings.archive import join, read_json
from clippings.embeddings import Embeddings
from clippings.errors import BadInput
from clippings.link.cells import (
    cell_batches,
    centroid_quantizer,
    index_in_cells,
    invert_probes,
    probe_cells,
    search_cells,
)
from clippings.link.ivf import probe_recall
from clippings.link.knn import (
    Graph,
    IvfCells,
    _exact_pairs,
    cosine_distances_of_pairs,
    default_max_edges,
    range_search_forest,
)
from clippings.link.pipeline import LinkResult, diagnostics, read_mst
from clippings.link.pruned import row_norms
from clippings.link.slink import Mst, components, mst_from_graph, stable_cluster_ids
from clippings.link.store import StoredVectors, VectorRows, read_vectors

CHANGES_SCHEMA = pa.schema(
    [
        pa.field("cluster_id", pa.string()),
        pa.field("old_cluster_ids", pa.list_(pa.string())),
        pa.field("added", pa.int64()),
        pa.field("cluster_size", pa.int64()),
    ]
)
"""changes.parquet: per cluster a new clipping joined, the ids its old members had (empty for a cluster of
new clippings only), how many new clippings joined, and its size now."""


@dataclass
class Linking:
    """A links folder in memory, as an add needs it: links.json, the vectors (linking order) and the MST as
    row numbers into them."""

    path: str
    info: dict
    stored: StoredVectors
    mst: Mst


def read_linking(links: str) -> Linking:
    """Read what `link --add` needs from a links folder; a folder without its vectors is refused (one line).
    Memory: the vectors are mapped locally (read from S3: n·d·4 bytes), plus the MST."""
    info = read_json(join(links, "links.json"))
    stored = read_vectors(links, int(info["counts"]["clippings"]))
    return Linking(links, info, stored, read_mst(links, stored.ids))


def check_batch(old: Linking, new: Embeddings, where: str, im_wt: float | None = None) -> None:
    """Refuse a batch that cannot join `old` exactly: another model, another dimension, another w, or ids the
    linking already holds. One line each, naming both folders and the fix."""
    links = old.path
    if new.fingerprint != old.info.get("fingerprint"):
        raise BadInput(
            f"link --add: embeddings {where} come from model {new.fingerprint!r} but links {links} were made "
            f"from {old.info.get('fingerprint')!r}; embed the batch with the links' model or re-link everything"
        )
    dim, old_dim = new.image.shape[1], old.stored.dim
    if dim != old_dim:
        raise BadInput(
            f"link --add: embeddings {where} have dimension {dim} but links {links} hold {old_dim}-dimensional "
            "vectors; embed the batch with the links' model"
        )
    saved = float(old.info["im_wt"])
    if im_wt is not None and im_wt != saved:
        raise BadInput(
            f"link --add: --im-wt {im_wt:g} differs from w = {saved:g} of links {links}; a batch is added with "
            "the links' w (omit --im-wt), or re-link everything with the new w"
        )
    present = pc.is_in(pa.array(new.ids, pa.string()), value_set=pa.array(old.stored.ids, pa.string()))
    count = pc.sum(present).as_py() or 0
    if count:
        first = new.ids[int(np.argmax(present.to_numpy(zero_copy_only=False)))]
        raise BadInput(
            f"link --add: {count} clipping_id(s) of embeddings {where} are already in links {links} (first: "
            f"{first!r}); drop them from the batch (a changed clipping needs a full re-link)"
        )


def search_new_rows(
    x: np.ndarray,
    n_old: int,
    threshold: float,
    cells: IvfCells | None = None,
    nprobe: int | None = None,
    recall_sample: int = 100,
    seed: int = 0,
    batch: int = 4096,
    max_edges: int | None = None,
) -> Graph:
    """Every pair ≤ threshold with a row ≥ n_old in it (a minimum spanning forest of them when there are
    more than `max_edges`, default max(2²⁰, 8·(n + m))), with float64 distances.

    x: (n + m, d) float32 unit rows, old rows first. cells: the IVF cells of the n old rows (None: exact flat
    search). nprobe: cells probed per query (ivf): the new rows are placed in their nearest cell and each
    probes its nprobe nearest cells (its own first), as the linking's own search did (clippings.link.cells).
    recall_sample: new rows whose within-t pairs are also found by brute force to measure the recall (ivf).
    Cost: flat O(m·(n + m)·d) time and a copy of x; ivf O(m·nprobe·256·d) + O(recall_sample·(n + m)·d)
    time, memory a copy of x, (n + m)·nprobe int32 probes and max_edges edges.
    """
    n, dim = x.shape
    timings: dict[str, float] = {}
    start = time.perf_counter()
    norms = row_norms(x)
    max_edges = default_max_edges(n) if max_edges is None else max_edges
    recall, new_cells, used_nprobe = None, None, None
    if cells is None:
        import faiss

        index = faiss.IndexFlatIP(dim)
        index.add(x)
        timings["index_s"] = time.perf_counter() - start
        t0 = time.perf_counter()
        src, dst, dist, compactions = range_search_forest(index, x, norms, n_old, threshold, batch, max_edges)
        timings["search_s"] = time.perf_counter() - t0
    else:
        quantizer = centroid_quantizer(cells.centroids)
        used_nprobe = int(min(nprobe or 1, len(cells.centroids)))
        table = np.full((n, used_nprobe), -1, dtype=np.int32)  # old rows do not query
        table[n_old:] = probe_cells(quantizer, x[n_old:], used_nprobe)
        assign = np.concatenate([cells.assign, table[n_old:, 0]]).astype(np.int64)
        index = index_in_cells(cells.centroids, x, assign, quantizer)
        probes = invert_probes(table, index.nlist)
        new_cells = IvfCells(cells.centroids, assign)
        timings["index_s"] = time.perf_counter() - start
        t0 = time.perf_counter()
        src, dst, _, compactions, _ = search_cells(index, probes, cell_batches(probes.sizes()), threshold,
                                                   max_edges)
        dist = cosine_distances_of_pairs(x, norms, src, dst)
        timings["search_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        rng = np.random.default_rng(seed)
        rows = np.sort(rng.choice(np.arange(n_old, n), size=min(recall_sample, n - n_old), replace=False))
        recall = probe_recall(None, x, _exact_pairs(x, norms, rows, threshold), used_nprobe, table, assign)
        timings["recall_s"] = time.perf_counter() - t0
    stats = {
        "edges": int(len(src)),
        "nprobe": used_nprobe,
        "compactions": compactions,
        "timings": {key: round(v, 3) for key, v in timings.items()},
    }
    return Graph(n, src, dst, dist, float(threshold), "flat" if cells is None else "ivf", recall, stats,
                 new_cells)


def changes_table(
    ids: np.ndarray, n_old: int, labels: np.ndarray, cluster_ids: np.ndarray, old_labels: np.ndarray
) -> pa.Table:
    """changes.parquet rows (CHANGES_SCHEMA), sorted by cluster_id, for the clusters holding a row ≥ n_old.

    labels/cluster_ids: components and names after the add (n + m rows); old_labels: components before it
    (n rows). Every old component lies inside one new component, so an old cluster's id is the smallest id
    among its members in the touched clusters. Cost: O(n) plus a sort of the touched clusters' members.
    """
    touched = np.zeros(labels.max() + 1, dtype=bool)
    touched[labels[n_old:]] = True
    old_rows = np.flatnonzero(touched[labels[:n_old]])
    old_names = stable_cluster_ids(ids[old_rows], old_labels[old_rows]) if len(old_rows) else old_rows
    olds: dict[int, set[str]] = {}
    for label, name in zip(labels[old_rows].tolist(), old_names.tolist(), strict=True):
        olds.setdefault(label, set()).add(name)
    added = np.bincount(labels[n_old:], minlength=len(touched))
    sizes = np.bincount(labels, minlength=len(touched))
    name_of = dict(zip(labels[n_old:].tolist(), cluster_ids[n_old:].tolist(), strict=True))
    rows = sorted((name, label) for label, name in name_of.items())
    return pa.table(
        {
            "cluster_id": [name for name, _ in rows],
            "old_cluster_ids": [sorted(olds.get(label, ())) for _, label in rows],
            "added": [int(added[label]) for _, label in rows],
            "cluster_size": [int(sizes[label]) for _, label in rows],
        },
        schema=CHANGES_SCHEMA,
    )


def add_batch(old: Linking, new: Embeddings, recall_sample: int = 100, seed: int = 0) -> LinkResult:
    """The linking of old ∪ new at the old threshold, by searching only the new rows (module docstring).

    old: read_linking's result; new: the batch (checked with check_batch first). recall_sample: see
    search_new_rows (ivf links). Returns the LinkResult to write (vectors: the new rows after the carried old
    ones; changes: the touched clusters); its links.json record appends this add to `adds`.
    Cost: search_new_rows, then the MST of (n − 1) + E edges O((n + E) log n) and one sort of the ids.
    """
    start = time.perf_counter()
    info = old.info
    threshold, im_wt = float(info["threshold"]), float(info["im_wt"])
    n_old, m = len(old.stored.ids), len(new.ids)
    pooled = new.pooled(im_wt)
    x = np.concatenate([*old.stored.blocks, pooled])
    ids = np.concatenate([old.stored.ids, new.ids])
    nprobe = (info.get("graph") or {}).get("nprobe")
    graph = search_new_rows(x, n_old, threshold, old.stored.cells, nprobe, recall_sample, seed)
    t0 = time.perf_counter()
    mst = mst_from_graph(
        n_old + m,
        np.concatenate([old.mst.src, graph.src]),
        np.concatenate([old.mst.dst, graph.dst]),
        np.concatenate([old.mst.distance, graph.distance]),
    )
    labels = components(mst, threshold)
    cluster_ids = stable_cluster_ids(ids, labels)
    changes = changes_table(ids, n_old, labels, cluster_ids, components(old.mst, threshold))
    merge_s = time.perf_counter() - t0
    exact_up_to = min(float(info["exact_up_to"]), threshold)
    record = {
        "rows": int(m),
        "index": graph.index,
        "recall": graph.recall,
        "nprobe": graph.stats["nprobe"],
        "edges": graph.stats["edges"],
        "touched_clusters": int(changes.num_rows),
        "exact_up_to": exact_up_to,
        "timings": {**graph.stats["timings"], "merge_cut_s": round(merge_s, 3)},
    }
    new_info = {
        key: value for key, value in info.items() if key not in ("recut_from", "timings", "diagnostics")
    }
    new_info.update(
        exact_up_to=exact_up_to,
        vectors={"rows": int(n_old + m), "dim": int(x.shape[1])},
        adds=[*info.get("adds", []), record],
    )
    new_info["diagnostics"] = diagnostics(x, cluster_ids, threshold)
    new_info["counts"] = {
        **info.get("counts", {}),
        "clippings": int(n_old + m),
        "mst_edges": int(len(mst.src)),
        "clusters": new_info["diagnostics"]["clusters"],
    }
    record["seconds"] = round(time.perf_counter() - start, 3)
    new_info["timings"] = {"add_s": record["seconds"]}
    rows = VectorRows(new.ids, pooled, _tail(graph.cells, n_old), carry=old.path)
    return LinkResult(ids, mst, cluster_ids, new_info, rows, changes)


def _tail(cells: IvfCells | None, n_old: int) -> IvfCells | None:
    """The cells of the new rows only (the old rows' cells are carried with their parts)."""
    return None if cells is None else IvfCells(cells.centroids, cells.assign[n_old:])
