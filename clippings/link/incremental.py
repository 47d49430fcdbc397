"""Link a new batch into an existing linking exactly, searching only the new rows (`link --add`, §7).

By the cycle property, an edge that is the largest on a cycle of smaller edges is in no minimum spanning
forest, so the MST of every pair ≤ t over old ∪ new is the MST of (the old MST's edges ∪ every new–old and
new–new pair ≤ t). Only the m new rows are searched, against all n + m rows: exactly for flat and pruned
links (a FAISS flat range search, O(m·(n + m)·d)), or in the links' own IVF cells at their calibrated nprobe
for ivf links (the old rows are placed in their saved cells without a search; each new row probes its
nprobe nearest cells, its own first, as in clippings.link.cells; recall measured on a sample of the new
rows). The merged forest is exact up to min(old exact_up_to, t): only pairs ≤ t were searched. Only the
old trees a new edge reaches are merged again; the rest of the forest is carried.

Clusters keep the name of their smallest member, so a cluster no new row joined keeps its id (read from
clusters.parquet, not re-derived); `changes` lists every cluster a new row joined (its old cluster ids,
how many new clippings, its size).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from clippings.embeddings import Embeddings
from clippings.errors import BadInput
from clippings.link.cells import (
    PartLists,
    cell_batches,
    centroid_quantizer,
    invert_probes,
    probe_cells,
    search_cells,
)
from clippings.link.exact import cosine_distances_of_pairs, exact_pairs
from clippings.link.graph import Graph, IvfCells
from clippings.link.ivf import calibrate_probes, calibration_pairs, probe_recall
from clippings.link.knn import default_max_edges, range_search_forest
from clippings.link.pipeline import LinkResult, diagnostics, positions, read_mst
from clippings.link.pruned import row_norms
from clippings.link.slink import Mst, components, mst_from_graph
from clippings.link.store import VECTORS, StoredVectors, VectorRows, read_vectors, require_complete
from clippings.numeric import unique_ints
from clippings.storage import join, read_json, read_part

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
class ClusterNames:
    """Each stored row's cluster id as a code into `sorted` (the distinct ids, ascending), so that ordering
    names is ordering integers."""

    codes: np.ndarray
    sorted: np.ndarray

    def ids(self) -> np.ndarray:
        """The cluster id of every row (object array)."""
        return self.sorted[self.codes]


@dataclass
class Linking:
    """A links folder in memory, as an add needs it: links.json, the vectors (stored order), the MST as row
    numbers into them and each row's cluster id at the links' threshold (clusters.parquet)."""

    path: str
    info: dict
    stored: StoredVectors
    mst: Mst
    names: ClusterNames


def read_linking(links: str) -> Linking:
    """Read what `link --add` needs from a links folder; an incomplete folder (a link that did not finish)
    or one without its vectors is refused (one line).
    Memory: the vectors are mapped locally (read from S3: n·d·4 bytes), plus the MST and the cluster ids."""
    require_complete(links)
    info = read_json(join(links, "links.json"))
    stored = read_vectors(links, int(info["counts"]["clippings"]))
    return Linking(links, info, stored, read_mst(links, stored.ids), read_names(links, stored.ids))


def read_names(links: str, ids: np.ndarray) -> ClusterNames:
    """The cluster id of each of `ids` (stored order) from clusters.parquet (a hash join, O(n), and a sort of
    the distinct cluster ids): the names an add keeps for the clusters it does not touch."""
    table = read_part(join(links, "clusters.parquet"), "links", columns=["clipping_id", "cluster_id"])
    found = positions(pa.array(ids, pa.string()), table.column("clipping_id"), links, f"{VECTORS}/",
                      "clusters.parquet")
    encoded = table.column("cluster_id").combine_chunks().dictionary_encode()
    order = pc.array_sort_indices(encoded.dictionary).to_numpy().astype(np.int64)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    codes = rank[encoded.indices.to_numpy()[found]]
    return ClusterNames(codes, encoded.dictionary.take(pa.array(order)).to_numpy(zero_copy_only=False))


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


ADD_CALIBRATION_ROWS = 1000
"""New rows whose exact within-t pairs calibrate an add's probes (as many as the full link's calibration)."""


def _samples(rng: np.random.Generator, n_old: int, n: int, recall_sample: int) -> tuple[np.ndarray, np.ndarray]:
    """(calibration rows, recall rows): disjoint random new rows (ADD_CALIBRATION_ROWS and recall_sample of
    them), or every new row for both when there are no more than that (the recall is then the add's own)."""
    new_rows = np.arange(n_old, n)
    if len(new_rows) <= ADD_CALIBRATION_ROWS + recall_sample:
        return new_rows, new_rows
    drawn = rng.choice(new_rows, size=ADD_CALIBRATION_ROWS + recall_sample, replace=False)
    return np.sort(drawn[:ADD_CALIBRATION_ROWS]), np.sort(drawn[ADD_CALIBRATION_ROWS:])


def search_new_rows(
    old_blocks: list[np.ndarray],
    new: np.ndarray,
    threshold: float,
    cells: IvfCells | None = None,
    nprobe: int | None = None,
    recall_sample: int = 100,
    seed: int = 0,
    batch: int = 4096,
    max_edges: int | None = None,
    recall_target: float = 0.995,
) -> tuple[Graph, np.ndarray | PartLists]:
    """Every pair ≤ threshold with a new row in it (a minimum spanning forest of them when there are more
    than `max_edges`, default max(2²⁰, 8·(n + m))), rows numbered old rows first; and all the rows' vectors,
    indexable by row number (for merge_batch and the diagnostics). Distances: float64 (flat), or float32
    ones re-checked in float64 within the rounding margin of t (ivf: merge_batch recomputes those it keeps,
    rather than all the pairs a reprint group gives).

    old_blocks: the n old float32 unit rows as consecutive blocks (a links folder's mapped parts); new: the
    m new rows. cells: the IVF cells of the n old rows (None: exact flat search). ivf: the new rows are placed
    in their nearest cell and each probes its nearest cells (its own first), as the linking's own search did
    (clippings.link.cells); the old rows keep their cells and do not query, so each pair is found from its
    new side only. nprobe: the cells each new row probes (the link's own when it was given); None
    calibrates the probes (count and margin, clippings.link.ivf.calibrate_probes) to `recall_target` of the
    one-sided coverage on ADD_CALIBRATION_ROWS new rows: the link's nprobe, calibrated for pairs found from
    either side, finds fewer here. recall_sample: other new rows whose within-t pairs are also found by
    brute force to measure the recall (ivf; all of them when the batch is small). Cost: flat
    O(m·(n + m)·d) time and a copy of the rows; ivf: the old rows are read in place (their parts are sorted
    by cell: clippings.link.cells.PartLists), O(m·nprobe·(n/nlist)·d) for the search and
    O((ADD_CALIBRATION_ROWS + recall_sample)·(n + m)·d) for the calibration and the recall, memory
    (n + m)·nprobe int32 probes and max_edges edges.
    """
    blocks = [*old_blocks, new]
    n_old = sum(len(b) for b in old_blocks)
    n, dim = n_old + len(new), new.shape[1]
    timings: dict[str, float] = {}
    start = time.perf_counter()
    max_edges = default_max_edges(n) if max_edges is None else max_edges
    recall, new_cells, used_nprobe, margin = None, None, None, math.inf
    if cells is None:
        import faiss

        x = np.concatenate(blocks)
        norms = row_norms(x)
        index = faiss.IndexFlatIP(dim)
        index.add(x)
        timings["index_s"] = time.perf_counter() - start
        t0 = time.perf_counter()
        src, dst, dist, compactions = range_search_forest(index, x, norms, n_old, threshold, batch, max_edges)
        timings["search_s"] = time.perf_counter() - t0
        rows: np.ndarray | PartLists = x
    else:
        nlist = len(cells.centroids)
        quantizer = centroid_quantizer(cells.centroids)
        assign = np.concatenate([cells.assign, probe_cells(quantizer, new, 1)[:, 0]]).astype(np.int64)
        rows = PartLists(blocks, assign, nlist)
        new_cells = IvfCells(cells.centroids, assign)
        rng = np.random.default_rng(seed)
        calibrate, measure = _samples(rng, n_old, n, recall_sample)
        timings["index_s"] = time.perf_counter() - start
        t0 = time.perf_counter()
        if nprobe is None:  # one-sided: the old rows do not query, so a new row must reach every old neighbour
            truth = calibration_pairs(rows, None, calibrate, threshold, rng)
            nprobe, margin = calibrate_probes(quantizer, rows, truth, calibrate, recall_target, nlist, n_old)
        used_nprobe = int(min(nprobe, nlist))
        table = np.full((n, used_nprobe), -1, dtype=np.int32)  # old rows do not query
        table[n_old:] = probe_cells(quantizer, new, used_nprobe, margin=margin)
        probes = invert_probes(table, nlist)
        timings["calibrate_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        src, dst, dist, compactions, _ = search_cells(rows, probes, cell_batches(probes.sizes()), threshold,
                                                      max_edges, fold=False)
        timings["search_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        truth = exact_pairs(rows, None, measure, threshold)
        recall = probe_recall(n, truth, table, assign)
        timings["recall_s"] = time.perf_counter() - t0
    stats = {
        "edges": int(len(src)),
        "nprobe": used_nprobe,
        "probe_margin": None if margin == math.inf else margin,
        "compactions": compactions,
        "timings": {key: round(v, 3) for key, v in timings.items()},
    }
    graph = Graph(n, src, dst, dist, float(threshold), "flat" if cells is None else "ivf", recall, stats,
                  new_cells)
    return graph, rows


def merge_batch(old: Mst, names: ClusterNames, new_ids: np.ndarray, graph: Graph, vectors: np.ndarray | PartLists,
                threshold: float) -> tuple[Mst, np.ndarray, pa.Table]:
    """The MST of old ∪ new, every row's cluster id at `threshold`, and changes.parquet's rows.

    old: the old rows' minimum spanning forest; names: their cluster ids; graph: the new rows' edges
    (search_new_rows); vectors: every row's, for the float64 distances of the new edges the MST keeps.
    A cycle of old ∪ new edges must use a new edge, so only the old forest's trees that a new edge reaches
    can change: their edges and the new ones are merged (Kruskal over those rows only), the other trees and
    their cluster ids are carried as they are. A merged cluster is named by the smallest of its old
    clusters' names and its new ids, which is its smallest member id.
    Cost: O(n) for the old trees, plus O(k log k) for the k rows and edges of the touched trees and the new
    edges, and the float64 distances of the new edges kept.
    """
    n_old, m = old.n, len(new_ids)
    # the old trees: its clusters when every old edge is within t (no re-cut to a lower t since the search)
    tree = names.codes if not len(old.distance) or old.distance.max() <= threshold else components(old, np.inf)
    touched = np.zeros(tree.max() + 1 if n_old else 0, dtype=bool)
    ends = np.concatenate([graph.src, graph.dst])
    touched[tree[ends[ends < n_old]]] = True
    old_rows = np.flatnonzero(touched[tree])
    nodes = np.concatenate([old_rows, np.arange(n_old, n_old + m)])
    local = np.empty(n_old + m, dtype=np.int64)  # row → its number among `nodes`
    local[nodes] = np.arange(len(nodes))
    moved = touched[tree[old.src]]
    sub = mst_from_graph(
        len(nodes),
        local[np.concatenate([old.src[moved], graph.src])],
        local[np.concatenate([old.dst[moved], graph.dst])],
        np.concatenate([old.distance[moved], graph.distance]),
    )
    a, b, d = nodes[sub.src], nodes[sub.dst], sub.distance.copy()
    fresh = np.flatnonzero(b >= n_old)  # the new edges kept (a < b): their float64 distances
    d[fresh] = cosine_distances_of_pairs(vectors, None, a[fresh], b[fresh], chunk=16384)
    labels = components(Mst(len(nodes), sub.src, sub.dst, d), threshold)
    a, b, d = np.concatenate([old.src[~moved], a]), np.concatenate([old.dst[~moved], b]), np.concatenate(
        [old.distance[~moved], d])
    order = np.lexsort((b, a, d))
    mst = Mst(n_old + m, a[order], b[order], d[order])
    return mst, *named_clusters(labels, names, old_rows, new_ids)


def named_clusters(labels: np.ndarray, names: ClusterNames, old_rows: np.ndarray, new_ids: np.ndarray
                   ) -> tuple[np.ndarray, pa.Table]:
    """Every row's cluster id after an add, and changes.parquet's rows (CHANGES_SCHEMA, by cluster_id).

    labels: the components at t of the rows merge_batch re-linked: the old rows `old_rows`, then the new
    rows; every cluster holding a new row lies whole among them. A cluster's id is the smallest of its old
    members' cluster ids and its new ids, found on integer keys that order like the strings (an old id's
    code, a new id's place among them), so no string is sorted but the m new ids.
    """
    m, k = len(new_ids), len(old_rows)
    order = np.argsort(new_ids.astype(str), kind="stable")
    rank = np.empty(m, dtype=np.int64)
    rank[order] = np.arange(m)
    slot = np.searchsorted(names.sorted, new_ids[order])[rank] if m else rank  # new id just below this code
    old_codes = names.codes[old_rows]
    keys = np.concatenate([(2 * old_codes + 1) * (m + 1), 2 * slot * (m + 1) + 1 + rank])
    smallest = np.full(labels.max() + 1 if len(labels) else 0, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(smallest, labels, keys)
    low, high = smallest % (m + 1), smallest // (m + 1)
    label_ids = np.where(low > 0, new_ids[order[np.maximum(low - 1, 0)]] if m else None,
                         names.sorted[np.maximum(high - 1, 0) // 2])
    cluster_ids = np.concatenate([names.ids(), new_ids]).astype(object)
    cluster_ids[old_rows] = label_ids[labels[:k]]
    cluster_ids[len(names.codes) :] = label_ids[labels[k:]]
    # changes: the clusters holding a new row, with the distinct old ids they absorbed
    touched = unique_ints(labels[k:])
    inside = np.isin(labels[:k], touched)
    pairs = unique_ints(labels[:k][inside].astype(np.int64) * len(names.sorted) + old_codes[inside])
    pair_label, pair_code = pairs // len(names.sorted), pairs % len(names.sorted)
    bounds = np.searchsorted(pair_label, touched, side="left"), np.searchsorted(pair_label, touched, side="right")
    added = np.bincount(labels[k:], minlength=len(smallest))
    sizes = np.bincount(labels, minlength=len(smallest))
    rows = sorted(zip(label_ids[touched].tolist(), range(len(touched)), strict=True))
    changes = pa.table(
        {
            "cluster_id": [name for name, _ in rows],
            "old_cluster_ids": [names.sorted[pair_code[bounds[0][i] : bounds[1][i]]].tolist() for _, i in rows],
            "added": [int(added[touched[i]]) for _, i in rows],
            "cluster_size": [int(sizes[touched[i]]) for _, i in rows],
        },
        schema=CHANGES_SCHEMA,
    )
    return cluster_ids, changes


def add_batch(old: Linking, new: Embeddings, recall_sample: int = 100, seed: int = 0) -> LinkResult:
    """The linking of old ∪ new at the old threshold, by searching only the new rows (module docstring).

    old: read_linking's result; new: the batch (checked with check_batch first). recall_sample: see
    search_new_rows (ivf links). Returns the LinkResult to write (vectors: the new rows after the carried old
    ones; changes: the touched clusters); its links.json record appends this add to `adds`.
    Cost: search_new_rows, then merge_batch (O(n) plus the touched trees).
    """
    start = time.perf_counter()
    info = old.info
    threshold, im_wt = float(info["threshold"]), float(info["im_wt"])
    n_old, m = len(old.stored.ids), len(new.ids)
    pooled = new.pooled(im_wt)
    ids = np.concatenate([old.stored.ids, new.ids])
    link_search = info.get("graph") or {}
    nprobe = None if link_search.get("nprobe_calibrated", True) else link_search.get("nprobe")
    graph, vectors = search_new_rows(old.stored.blocks, pooled, threshold, old.stored.cells, nprobe,
                                     recall_sample, seed)
    t0 = time.perf_counter()
    mst, cluster_ids, changes = merge_batch(old.mst, old.names, np.asarray(new.ids, dtype=object), graph,
                                            vectors, threshold)
    merge_s = time.perf_counter() - t0
    exact_up_to = min(float(info["exact_up_to"]), threshold)
    record = {
        "rows": int(m),
        "index": graph.index,
        "recall": graph.recall,
        "nprobe": graph.stats["nprobe"],
        "probe_margin": graph.stats["probe_margin"],
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
        vectors={"rows": int(n_old + m), "dim": int(pooled.shape[1])},
        adds=[*info.get("adds", []), record],
    )
    new_info["diagnostics"] = diagnostics(vectors, cluster_ids, threshold)
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
