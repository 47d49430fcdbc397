"""Scoring a clustering against labels: ARI (the paper's metric), pairwise precision/recall/F1, cluster sizes.

Pair counts come from the contingency table (sum of C(n_ij, 2)), never from enumerating pairs, so scoring a
million clippings costs one sort. `evaluate_links` joins a links folder with its labelled archive.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
from sklearn.metrics import adjusted_rand_score
from sklearn.metrics.cluster import contingency_matrix

from clippings.archive import read_archive, read_quarantine
from clippings.errors import BadInput
from clippings.link.store import require_complete
from clippings.storage import exists, join, read_part, write_json


def ari(labels_true: Sequence, labels_pred: Sequence) -> float:
    """Adjusted Rand Index (sklearn's `adjusted_rand_score`): 1 = identical partitions, ~0 = chance."""
    return float(adjusted_rand_score(labels_true, labels_pred))


def _pairs(counts: np.ndarray) -> int:
    counts = np.asarray(counts, dtype=np.int64)
    return int((counts * (counts - 1) // 2).sum())


def pairwise_prf(labels_true: Sequence, labels_pred: Sequence) -> dict:
    """Pairwise precision, recall and F1: a pair is positive when both items share a predicted cluster.

    true positives = pairs sharing both the true and predicted cluster = sum over contingency cells of
    C(n_ij, 2). Conventions: precision is 1.0 when no pair is predicted, recall 1.0 when no true pair exists.
    Cost: O(n log n) time (one sort), O(n) memory. Returns precision, recall, f1 and the pair counts.
    """
    if len(labels_true) != len(labels_pred):
        raise ValueError(f"labels_true has {len(labels_true)} items, labels_pred {len(labels_pred)}")
    if len(labels_true) == 0:
        return {"precision": 1.0, "recall": 1.0, "f1": 1.0, "true_pairs": 0, "predicted_pairs": 0,
                "true_positive_pairs": 0}
    table = contingency_matrix(labels_true, labels_pred, sparse=True)
    tp = _pairs(table.data)
    true_pairs = _pairs(np.asarray(table.sum(axis=1)).ravel())
    pred_pairs = _pairs(np.asarray(table.sum(axis=0)).ravel())
    precision = tp / pred_pairs if pred_pairs else 1.0
    recall = tp / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": float(precision), "recall": float(recall), "f1": float(f1), "true_pairs": true_pairs,
            "predicted_pairs": pred_pairs, "true_positive_pairs": tp}


def cluster_size_summary(cluster_ids: Sequence) -> dict:
    """Counts of clusters by size: total, singletons, 2-10, 11-30, 31+, largest, mean size."""
    _, sizes = np.unique(np.asarray(cluster_ids, dtype=object).astype(str), return_counts=True)
    if sizes.size == 0:
        return {"clusters": 0, "items": 0, "singletons": 0, "size_2_10": 0, "size_11_30": 0, "size_31_plus": 0,
                "largest": 0, "mean_size": 0.0}
    return {
        "clusters": int(sizes.size),
        "items": int(sizes.sum()),
        "singletons": int((sizes == 1).sum()),
        "size_2_10": int(((sizes >= 2) & (sizes <= 10)).sum()),
        "size_11_30": int(((sizes >= 11) & (sizes <= 30)).sum()),
        "size_31_plus": int((sizes >= 31).sum()),
        "largest": int(sizes.max()),
        "mean_size": float(sizes.mean()),
    }


def evaluate_clusters(labels_true: Sequence, labels_pred: Sequence) -> dict:
    """All metrics of one clustering: ARI, pairwise P/R/F1 and predicted vs true cluster sizes."""
    return {
        "ari": ari(labels_true, labels_pred),
        **pairwise_prf(labels_true, labels_pred),
        "n": len(labels_true),
        "predicted_clusters": cluster_size_summary(labels_pred),
        "true_clusters": cluster_size_summary(labels_true),
    }


def _examples(ids: list[str]) -> str:
    shown = ", ".join(repr(i) for i in sorted(ids)[:3])
    return shown + (", ..." if len(ids) > 3 else "")


def _read_clusters(links: str) -> pa.Table:
    path = join(links, "clusters.parquet")
    if not exists(path):
        raise BadInput(f"links {links}: clusters.parquet not found; give a folder written by 'clippings link' "
                       "or 'clippings baseline'")
    table = read_part(path, "links")
    need = [c for c in ("clipping_id", "cluster_id") if c not in table.column_names]
    if need:
        raise BadInput(f"links {path}: required column '{need[0]}' is missing; re-create the links")
    return table


def evaluate_links(links: str, archive: str) -> dict:
    """Score `links/clusters.parquet` against the labels of `archive`; writes `links/metrics.json`.

    Every labelled archive id must be in the clusters or in `links/_quarantine` (quarantined ids are scored
    as singletons: a clipping that was not linked is linked to nothing); ids in the clusters that the archive
    lacks mean the links came from another archive. Both are BadInput naming a few ids; so is an incomplete
    links folder (a link that did not finish). `no_caption` counts the clippings whose caption is null or
    empty: they were linked by their image alone.
    Memory: the archive table (images included) and the clusters table.
    """
    require_complete(links)
    table = read_archive(archive, require_labels=True)
    ids = table.column("clipping_id").to_pylist()
    labels = table.column("label").to_pylist()
    clusters = _read_clusters(links)
    linked = dict(zip(clusters.column("clipping_id").to_pylist(), clusters.column("cluster_id").to_pylist(),
                      strict=True))
    quarantined = set(read_quarantine(links).column("clipping_id").to_pylist())
    archive_ids = set(ids)
    extra = [i for i in linked if i not in archive_ids]
    if extra:
        raise BadInput(f"links {links}: {len(extra)} clipping_ids of clusters.parquet are not in archive {archive} "
                       f"(e.g. {_examples(extra)}); evaluate against the archive that was linked")
    missing = [i for i in ids if i not in linked and i not in quarantined]
    if missing:
        raise BadInput(f"links {links}: {len(missing)} clipping_ids of archive {archive} are missing from "
                       f"clusters.parquet and _quarantine (e.g. {_examples(missing)}); link the whole archive")
    pred = [linked.get(i, f"\0quarantined:{i}") for i in ids]
    metrics = evaluate_clusters(labels, pred)
    captions = table.column("caption").to_pylist()
    metrics.update({"links": links, "archive": archive,
                    "quarantined": sum(1 for i in ids if i in quarantined and i not in linked),
                    "no_caption": sum(1 for c in captions if not (c or "").strip())})
    write_json(join(links, "metrics.json"), metrics)
    return metrics
