"""The Jaccard baseline: link captions whose word n-gram sets overlap, as in the paper's first table row.

Captions are cleaned (lower case, broken hyphenation "con- tinued" joined, punctuation removed), cut into
sets of word n-grams, and every pair with Jaccard similarity >= `overlap` is linked; clusters are connected
components. n and overlap are tuned on a labelled validation set by ARI.

Never all pairs: candidates come from an inverted index over *prefixes* (prefix filtering, Chaudhuri et al.
2006; Bayardo et al. 2007, "Scaling up all pairs similarity search"): with n-grams ordered rarest first, two
sets with Jaccard >= t share an n-gram among the first |A| - ceil(t|A|) + 1 of each. Candidates are then
verified exactly, so the result equals the brute-force join, except for one documented cap that keeps the
cost linear in the number of captions N: posting lists are paired shortest first, and lists longer than an
effective cap are not paired at all. The cap is the largest list length <= `max_df` (500) at which the
pairs emitted stay <= `pair_budget` x N (30 per caption), so candidate pairs per caption are bounded
whatever the archive size. What it may miss: pairs whose shared prefix n-grams are all more common than the
cap, i.e. captions that agree only on boilerplate ("(AP) —", "mr and mrs") and not on any rarer n-gram
such as a name; reprint groups larger than the cap whose every prefix n-gram is also that common. The
number of unpaired n-grams and the cap used are reported. To keep such groups connected, every caption is
also paired with its neighbours in a few MinHash orders (sorted neighbourhood: 12 pairs per caption). Cost: O(occurrences log occurrences) sorts plus
at most pair_budget x N candidate pairs; memory ~100 bytes per n-gram occurrence and ~24 per pair.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from clippings.evaluate import ari
from clippings.numeric import unique_ints

MAX_DF = 500
PAIR_BUDGET = 30.0  # candidate pairs emitted per caption from the prefix index, at most (before deduplication)
SN_HASHES, SN_WINDOW = 4, 3  # sorted-neighbourhood candidates: MinHash orders x neighbours per caption
NS = (1, 2, 3, 4, 5)
OVERLAPS = tuple(float(x) for x in np.round(np.arange(0.05, 0.951, 0.05), 2))

_HYPHEN_BREAK = re.compile(r"(\w)-\s+(\w)")
_NON_WORD = re.compile(r"[^0-9a-z]+")


def clean_caption(text: str | None) -> list[str]:
    """Words of a caption: lower case, "con- tinued" -> "continued", punctuation removed."""
    if not text:
        return []
    text = _HYPHEN_BREAK.sub(r"\1\2", text.lower())
    return _NON_WORD.sub(" ", text).split()


@dataclass
class NgramSets:
    """Sets of n-gram ids per caption in CSR form: the ids of caption i are grams[indptr[i]:indptr[i+1]]."""

    indptr: np.ndarray  # int64, len = captions + 1
    grams: np.ndarray  # int64 n-gram ids, sorted and unique within each caption
    n_grams: int  # number of distinct n-grams

    @property
    def sizes(self) -> np.ndarray:
        return np.diff(self.indptr)

    def __len__(self) -> int:
        return len(self.indptr) - 1


def _dense(keys: np.ndarray) -> np.ndarray:
    return np.unique(keys, return_inverse=True)[1].astype(np.int64)


def ngram_sets(captions: Sequence[str | None], n: int) -> NgramSets:
    """Exact word n-gram sets (no hashing): n-gram ids are built by iterated pairing of integer ids.

    A caption shorter than n words has one n-gram, all its words; an empty caption has none (it links to
    nothing). Cost: one Python pass to split words, then O(n) numpy sorts over all word positions.
    """
    vocab: dict[str, int] = {}
    words = [clean_caption(c) for c in captions]
    lengths = np.fromiter((len(w) for w in words), dtype=np.int64, count=len(words))
    wid = np.fromiter((vocab.setdefault(t, len(vocab)) for ws in words for t in ws), dtype=np.int64,
                      count=int(lengths.sum()))
    doc = np.repeat(np.arange(len(words), dtype=np.int64), lengths)
    starts = np.concatenate([[0], np.cumsum(lengths)])
    remaining = starts[1:][doc] - np.arange(wid.size)  # words from this position to the caption's end
    v = max(len(vocab), 1)
    grams_k = wid.copy()  # id of the k-gram starting at each position (valid where remaining >= k)
    keys, owners = [], []
    for k in range(1, n + 1):
        if k > 1:
            valid = remaining >= k
            nxt = np.zeros_like(grams_k)
            nxt[valid] = _dense(grams_k[valid] * v + wid[np.flatnonzero(valid) + k - 1])
            grams_k = nxt
        # captions of exactly k < n words contribute their whole text as one gram, tagged with its order
        take = (remaining == lengths[doc]) & (lengths[doc] == k) if k < n else remaining >= n
        keys.append(grams_k[take] * (n + 1) + k)
        owners.append(doc[take])
    gram = _dense(np.concatenate(keys)) if keys else np.zeros(0, np.int64)
    owner = np.concatenate(owners) if owners else np.zeros(0, np.int64)
    n_grams = int(gram.max()) + 1 if gram.size else 0
    pair = unique_ints(owner * max(n_grams, 1) + gram)
    owner, gram = pair // max(n_grams, 1), pair % max(n_grams, 1)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(owner, minlength=len(words)))]).astype(np.int64)
    return NgramSets(indptr, gram, n_grams)


def _pairs_within_groups(members: np.ndarray, group_end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All (members[i], members[j]) with i < j in the same group; `group_end[i]` = end index of i's group."""
    src, dst = [], []
    active = np.flatnonzero(group_end - np.arange(members.size) > 1)
    k = 1
    while active.size:
        src.append(members[active])
        dst.append(members[active + k])
        k += 1
        active = active[group_end[active] - active > k]
    if not src:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(src), np.concatenate(dst)


@dataclass
class Candidates:
    """Candidate pairs (a[i] < b[i], unique) and what the caps left out."""

    a: np.ndarray
    b: np.ndarray
    skipped_ngrams: int  # prefix n-grams whose posting lists were not paired (df above the effective cap)
    max_df_used: int  # the effective cap: posting lists up to this length were paired


def _effective_cap(counts: np.ndarray, max_df: int, budget: float) -> int:
    """The largest df d <= max_df such that pairing every posting list of length <= d costs <= budget pairs.

    Lists are admitted by length, shortest first, so the cap depends only on the df histogram (deterministic).
    """
    values, inverse = np.unique(counts, return_inverse=True)
    cost = np.bincount(inverse, weights=counts * (counts - 1) / 2.0)
    fits = (np.cumsum(cost) <= budget) & (values <= max_df)
    ok = np.flatnonzero(~fits)
    last = (ok[0] if ok.size else values.size) - 1
    return int(values[last]) if last >= 0 else 1


def minhash_neighbours(sets: NgramSets, n_hashes: int = SN_HASHES, window: int = SN_WINDOW,
                       seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Sorted-neighbourhood candidates (Hernandez & Stolfo 1995) over MinHash keys: pairs (a < b, may repeat).

    Captions are sorted by each of `n_hashes` MinHash values of their n-gram sets and each is paired with
    its next `window` captions. Two sets share a MinHash with probability equal to their Jaccard, so a
    reprint group forms runs in these orders and the chains through them keep it connected even when all
    its n-grams are above the prefix index's cap (large groups, boilerplate-only captions). Cost: per hash
    one pass over the n-gram occurrences and one sort of the captions; n_hashes x window pairs per caption.
    """
    nonempty = np.flatnonzero(sets.sizes > 0)
    if nonempty.size < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    prime = (1 << 31) - 1
    rng = np.random.default_rng([seed, 0x5A])
    src, dst = [], []
    for mult, add in rng.integers(1, prime, (n_hashes, 2)).tolist():
        h = (sets.grams * mult + add) % prime  # universal hashing of n-gram ids (< 2^31, no overflow)
        order = nonempty[np.lexsort((nonempty, np.minimum.reduceat(h, sets.indptr[nonempty])))]
        for d in range(1, min(window, order.size - 1) + 1):
            src.append(order[:-d])
            dst.append(order[d:])
    a, b = np.concatenate(src), np.concatenate(dst)
    return np.minimum(a, b), np.maximum(a, b)


@dataclass
class PrefixLists:
    """The posting lists of the captions' prefix n-grams (prefix filtering: a pair with Jaccard ≥ overlap
    shares a gram of both prefixes, under one global order of grams, rarest first): list i holds the
    captions `doc[starts[i] : starts[i] + counts[i]]`, ascending. cap: the effective cap; lists longer are
    not paired (`_effective_cap`)."""

    doc: np.ndarray
    starts: np.ndarray
    counts: np.ndarray
    cap: int


def prefix_lists(sets: NgramSets, overlap: float, max_df: int = MAX_DF, pair_budget: float = PAIR_BUDGET
                 ) -> PrefixLists:
    """The prefix posting lists of `sets` for Jaccard ≥ `overlap` and their cap (see `candidate_pairs`).
    Cost: O(n-gram occurrences log)."""
    sizes = sets.sizes
    doc = np.repeat(np.arange(len(sets), dtype=np.int64), sizes)
    df = np.bincount(sets.grams, minlength=sets.n_grams)
    rank = np.empty(sets.n_grams, np.int64)
    rank[np.lexsort((np.arange(sets.n_grams), df))] = np.arange(sets.n_grams)
    order = np.lexsort((rank[sets.grams], doc))  # each caption's n-grams, rarest first
    pos = np.arange(doc.size) - sets.indptr[doc]
    prefix = sizes - np.ceil(overlap * sizes - 1e-9).astype(np.int64) + 1
    keep = order[pos < prefix[doc]]
    p_gram, p_doc = sets.grams[keep], doc[keep]
    del doc, order, pos, keep
    by_gram = np.lexsort((p_doc, p_gram))
    p_gram, p_doc = p_gram[by_gram], p_doc[by_gram]
    bounds = np.flatnonzero(np.diff(p_gram)) + 1
    starts = np.concatenate([[0], bounds]).astype(np.int64)
    counts = np.concatenate([bounds, [p_gram.size]]).astype(np.int64) - starts
    cap = _effective_cap(counts, max_df, pair_budget * len(sets)) if counts.size else max_df
    return PrefixLists(p_doc, starts, counts, cap)


def _length_ok(sets: NgramSets, a: np.ndarray, b: np.ndarray, overlap: float) -> np.ndarray:
    """The length filter of Jaccard ≥ overlap: overlap · max(|A|, |B|) ≤ min(|A|, |B|)."""
    la, lb = sets.sizes[a], sets.sizes[b]
    return np.minimum(la, lb) >= overlap * np.maximum(la, lb) - 1e-9


def candidate_pairs(sets: NgramSets, overlap: float, max_df: int = MAX_DF,
                    pair_budget: float = PAIR_BUDGET, chunk_pairs: int = 20_000_000) -> Candidates:
    """Candidate pairs for Jaccard >= overlap by prefix filtering, with a cap that keeps the cost linear.

    Every pair with Jaccard >= overlap is a candidate, unless it only shares prefix n-grams whose posting
    lists are longer than the effective cap: the largest length <= `max_df` at which pairing all lists up
    to that length emits at most `pair_budget` x captions pairs (see the module note). The MinHash
    sorted-neighbourhood pairs (`minhash_neighbours`) are added, so groups above the cap stay chained.
    Candidates also pass the length filter overlap * max(|A|, |B|) <= min(|A|, |B|). Cost: O(n-gram
    occurrences log) plus at most (pair_budget + SN_HASHES x SN_WINDOW) x captions emitted pairs,
    deduplicated `chunk_pairs` at a time (memory ~24 bytes each).
    """
    n_docs = len(sets)
    lists = prefix_lists(sets, overlap, max_df, pair_budget)
    counts, cap = lists.counts, lists.cap
    paired = np.flatnonzero((counts > 1) & (counts <= cap))
    # cut the paired lists into chunks of about chunk_pairs pairs, deduplicating each before the next
    cum = np.cumsum(counts[paired] * (counts[paired] - 1) // 2)
    cuts = np.searchsorted(cum, np.arange(chunk_pairs, cum[-1] + chunk_pairs, chunk_pairs)) if cum.size else []
    keys, lo = [], 0
    a, b = minhash_neighbours(sets)
    ok = _length_ok(sets, a, b, overlap)
    keys.append(unique_ints(a[ok] * n_docs + b[ok]))
    for hi in list(cuts) + [paired.size]:
        hi = min(int(hi) + 1, paired.size)
        if hi <= lo:
            continue
        g = paired[lo:hi]
        lo = hi
        length = counts[g]
        end = np.cumsum(length)
        group_end = np.repeat(end, length)  # end of each member's group, in the members array
        members = lists.doc[np.repeat(lists.starts[g] - (end - length), length) + np.arange(int(end[-1]))]
        a, b = _pairs_within_groups(members, group_end)
        ok = _length_ok(sets, a, b, overlap)
        keys.append(unique_ints(a[ok] * n_docs + b[ok]))
    key = unique_ints(np.concatenate(keys)) if keys else np.zeros(0, np.int64)
    return Candidates(key // n_docs, key % n_docs, int((counts > cap).sum()), int(cap))


def candidate_pairs_of(sets: NgramSets, overlap: float, queries: np.ndarray, max_df: int = MAX_DF,
                       pair_budget: float = PAIR_BUDGET, chunk_pairs: int = 20_000_000) -> Candidates:
    """The pairs of `candidate_pairs` that hold at least one of the captions `queries` (a boolean mask), at
    a cost that follows the queries: each query's prefix grams are paired with their lists' members (the
    same lists, cap and MinHash pairs as `candidate_pairs`, so the same pairs). Cost: the prefix lists, plus
    one pair per query and member of each list its prefix grams fall in, about `chunk_pairs` at a time."""
    n_docs = len(sets)
    lists = prefix_lists(sets, overlap, max_df, pair_budget)
    counts, cap = lists.counts, lists.cap
    a, b = minhash_neighbours(sets)
    ok = _length_ok(sets, a, b, overlap) & (queries[a] | queries[b])
    keys = [unique_ints(a[ok] * n_docs + b[ok])]
    list_of = np.repeat(np.arange(len(counts)), counts)
    entries = np.flatnonzero(queries[lists.doc] & (counts[list_of] > 1) & (counts[list_of] <= cap))
    cum = np.cumsum(counts[list_of[entries]])
    edges = np.unique(np.minimum(np.searchsorted(cum, np.arange(0, cum[-1] if cum.size else 0, chunk_pairs)),
                                 len(entries)).tolist() + [len(entries)])
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        at = entries[lo:hi]
        length = counts[list_of[at]]
        first = np.repeat(lists.starts[list_of[at]] - (np.cumsum(length) - length), length)
        other = lists.doc[first + np.arange(int(length.sum()))]
        query = np.repeat(lists.doc[at], length)
        pair = (query != other) & _length_ok(sets, query, other, overlap)
        lo_, hi_ = np.minimum(query[pair], other[pair]), np.maximum(query[pair], other[pair])
        keys.append(unique_ints(lo_ * n_docs + hi_))
    key = unique_ints(np.concatenate(keys))
    return Candidates(key // n_docs, key % n_docs, int((counts > cap).sum()), int(cap))


def jaccard_of_pairs(sets: NgramSets, a: np.ndarray, b: np.ndarray, chunk: int = 1_000_000) -> np.ndarray:
    """Exact Jaccard similarity of the n-gram sets of each pair (a[i], b[i]). Cost: O(pairs x set size)."""
    x = sp.csr_matrix((np.ones(sets.grams.size, np.int32), sets.grams, sets.indptr),
                      shape=(len(sets), max(sets.n_grams, 1)))
    sizes = sets.sizes
    out = np.empty(a.size, np.float64)
    for s in range(0, a.size, chunk):
        aa, bb = a[s:s + chunk], b[s:s + chunk]
        inter = np.asarray(x[aa].multiply(x[bb]).sum(axis=1)).ravel()
        union = sizes[aa] + sizes[bb] - inter
        out[s:s + chunk] = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    return out


def components(n_items: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Connected-component label of each item given linked pairs (a, b). Cost: O(items + pairs)."""
    graph = sp.coo_matrix((np.ones(a.size, np.int8), (a, b)), shape=(n_items, n_items))
    return connected_components(graph, directed=False)[1]


def stable_cluster_ids(ids: Sequence[str], labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(cluster_id, cluster_size) per item: a cluster's id is its smallest member clipping_id.

    Derived from the members only, so the same input gives the same ids on every run.
    """
    ids_arr = np.asarray(ids, dtype=object)
    order = np.argsort(ids_arr.astype(str), kind="stable")
    first = np.full(labels.max() + 1 if labels.size else 0, ids_arr.size, np.int64)
    rank = np.empty(ids_arr.size, np.int64)
    rank[order] = np.arange(ids_arr.size)
    np.minimum.at(first, labels, rank)
    sizes = np.bincount(labels)
    return ids_arr[order[first[labels]]], sizes[labels]


@dataclass
class JaccardResult:
    labels: np.ndarray  # connected-component label per caption
    candidate_pairs: int
    linked_pairs: int
    skipped_ngrams: int
    max_df_used: int


def jaccard_link(captions: Sequence[str | None], n: int, overlap: float, max_df: int = MAX_DF,
                 pair_budget: float = PAIR_BUDGET) -> JaccardResult:
    """Link captions with n-gram Jaccard >= overlap; component labels per caption.

    Cost: near-linear in captions (see `candidate_pairs`); memory ~100 bytes per n-gram occurrence plus
    ~24 bytes per candidate pair.
    """
    sets = ngram_sets(captions, n)
    cand = candidate_pairs(sets, overlap, max_df, pair_budget)
    sim = jaccard_of_pairs(sets, cand.a, cand.b)
    linked = sim >= overlap
    return JaccardResult(components(len(sets), cand.a[linked], cand.b[linked]), int(cand.a.size),
                         int(linked.sum()), cand.skipped_ngrams, cand.max_df_used)


def tune_jaccard(captions: Sequence[str | None], labels: Sequence[str], ns: Sequence[int] = NS,
                 overlaps: Sequence[float] = OVERLAPS, max_df: int = MAX_DF,
                 pair_budget: float = PAIR_BUDGET) -> dict:
    """Choose (n, overlap) maximising ARI on a labelled set; returns the choice and the whole grid.

    For each n the candidates are found once at the smallest overlap and verified once; each overlap is then
    a filter on the verified similarities. Ties go to the smaller n, then the smaller overlap.
    """
    best: dict = {"ari": -2.0}
    grid = []
    low = min(overlaps)
    for n in ns:
        sets = ngram_sets(captions, n)
        cand = candidate_pairs(sets, low, max_df, pair_budget)
        a, b = cand.a, cand.b
        sim = jaccard_of_pairs(sets, a, b)
        for t in sorted(overlaps):
            keep = sim >= t
            score = ari(labels, components(len(sets), a[keep], b[keep]))
            grid.append({"n": n, "overlap": t, "ari": score})
            if score > best["ari"]:
                best = {"n": n, "overlap": t, "ari": score}
    return {**best, "grid": grid}


def run_baseline(archive: str, val: str, out: str, max_df: int = MAX_DF, pair_budget: float = PAIR_BUDGET) -> dict:
    """Tune on `val`, link `archive`, write `out/{clusters.parquet,links.json}` at once (the way `clippings
    link` writes a links folder: clippings.link.store.staged_folder); returns links.json's content.

    Rows with a missing or empty caption link to nothing (singletons); no row is quarantined, so the
    clusters hold every input id. Memory: the archive table (images included) plus the n-gram arrays.
    """
    import pyarrow as pa

    from clippings.archive import CLUSTERS_SCHEMA, read_archive
    from clippings.link.store import LINKS_JSON, check_replaceable, staged_folder
    from clippings.storage import join, write_json, write_table_atomic

    check_replaceable(out)  # before the work: writing replaces `out` whole
    timings = {}
    t0 = time.perf_counter()
    val_table = read_archive(val, require_labels=True)
    table = read_archive(archive)
    timings["read_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    choice = tune_jaccard(val_table.column("caption").to_pylist(), val_table.column("label").to_pylist(),
                          max_df=max_df, pair_budget=pair_budget)
    timings["tune_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ids = table.column("clipping_id").to_pylist()
    result = jaccard_link(table.column("caption").to_pylist(), choice["n"], choice["overlap"], max_df, pair_budget)
    cluster_id, cluster_size = stable_cluster_ids(ids, result.labels)
    timings["link_s"] = time.perf_counter() - t0
    clusters = pa.table({"clipping_id": ids, "cluster_id": cluster_id.tolist(), "cluster_size": cluster_size},
                        schema=CLUSTERS_SCHEMA)
    info = {
        "method": "jaccard", "n": choice["n"], "overlap": choice["overlap"], "val_ari": choice["ari"],
        "max_df": max_df, "pair_budget": pair_budget, "max_df_used": result.max_df_used,
        "archive": archive, "val": val,
        "counts": {"clippings": len(ids), "clusters": int(result.labels.max()) + 1 if ids else 0,
                   "candidate_pairs": result.candidate_pairs, "linked_pairs": result.linked_pairs,
                   "skipped_ngrams": result.skipped_ngrams, "quarantined": 0},
        "timings": {k: round(v, 3) for k, v in timings.items()},
        "tune_grid": choice["grid"],
    }
    labels = table.column("label")
    if labels.null_count == 0:
        info["ari"] = ari(labels.to_pylist(), result.labels)
    with staged_folder(out) as folder:
        write_table_atomic(clusters, join(folder, "clusters.parquet"))
        write_json(join(folder, LINKS_JSON), info)
    return info
