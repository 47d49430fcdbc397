"""Pseudo-labels from an unlabelled archive: reprint groups that independent witnesses agree on.

`clippings mine` embeds an archive with a model, keeps only the pairs of clippings that three witnesses
agree are reprints, and writes the groups they form as a labelled `train/` and `val/` archive that
`clippings train` takes unchanged. It is built for precision, not recall: a wrong pseudo-label teaches
SupCon to pull two different clippings together, while a missed pair only costs a training example.

The rules (docs/label-free.md):

- **Strict cut per tower.** For the image tower (w = 1) and the text tower (w = 0) alone, the label-free
  auto cut t of clippings.link.auto (the valley of the MST edge lengths, `cut_of`) is taken and made
  stricter: t_strict = `strictness` · t (default 0.75). A tower whose edge lengths show no clear valley
  (depth < clippings.link.auto.MIN_DEPTH) still gives its cut, but `mine.json` records it as unclear and a
  warning is logged: the other two witnesses must then carry the precision.
- **A mined pair** (i, j) has all three witnesses: image distance ≤ the image t_strict, text distance ≤ the
  text t_strict, and caption agreement: the Jaccard similarity of the two captions' sets of character
  `ngram`-grams (default 4; of the cleaned text: lower case, punctuation dropped, `clippings.baselines.
  clean_caption`) ≥ `min_jaccard` (default 0.3). The n-grams are the witness that needs no model: they stop
  the pairs a weak tower makes (two empty captions embed identically; a random image tower finds look-alikes
  everywhere). A clipping without a caption therefore joins no group.
- **Groups** are the connected components of the mined pairs. Each row keeps its group's confidence
  (`mined_confidence`): a pair's confidence is its smallest margin, min(1 − d_img/t_img, 1 − d_txt/t_txt,
  (J − min_jaccard)/(1 − min_jaccard)), in [0, 1]; a group's is the weakest link of its most confident
  spanning tree (the bottleneck that holds it together).
- **Rows in no group.** SupCon needs negatives and every row of a labelled set needs a label, but a row
  labelled as its own singleton is a claim that it has no reprint: a wrong claim pushes true reprints
  apart. So a row is kept as a singleton only when no witness sees any other clipping near it: its nearest
  neighbour lies beyond the loose (auto, not strict) cut t in both towers (the text tower among rows with
  a caption only; a row without a caption is judged by its image alone), and no other caption reaches
  `min_jaccard` of character n-grams with its own (`_caption_echo`). Every other row is left out
  and listed in `leftovers.parquet` (`clipping_id`, `stage`, `reason`) with the distances that made it
  ambiguous, beside the rows embedding quarantined (their own reason): input ids = train ∪ val ∪ leftovers.
- **Split.** Groups (not rows) go to val with probability `val_fraction` (default 0.2) by a seeded
  shuffle, multi-member groups and singletons separately, so both splits get some of each and no group
  straddles them; labels are `mined-<smallest member id>`, stable across re-runs.

The neighbour searches are exact (flat kNN) up to clippings.link.auto.FLAT_MAX rows and run on IVF cells
above, their recalls measured and recorded (`MineRules.index`, `_searches`, docs/label-free.md#at-archive-scale).

`mine_embeddings` is the pure rule (vectors and captions in, a `Mined` out); `mine_archive` embeds, mines
and writes `out/{train,val}/part-*.parquet`, `out/leftovers.parquet`, `out/mine.json` (settings, cuts,
counts, and when the input carries labels the mined pairs' precision and recall against them) and keeps
the embeddings in `out/embeddings/` (a re-run resumes them).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from clippings.archive import QUARANTINE_SCHEMA, normalise_archive, read_quarantine, validate_archive_part
from clippings.errors import BadInput
from clippings.image_paths import ARCHIVE_ONLY, ImagePolicy, read_row_image
from clippings.link.auto import DEFAULT_METHOD
from clippings.link.exact import cosine_distances_of_pairs
from clippings.numeric import unique_ints
from clippings.params import MINE_MAX_NGRAM
from clippings.params import MINE_MIN_JACCARD as MIN_JACCARD
from clippings.params import MINE_NGRAM as NGRAM
from clippings.params import MINE_STRICTNESS as STRICTNESS
from clippings.params import MINE_VAL_FRACTION as VAL_FRACTION
from clippings.storage import (
    exists,
    filesystem,
    join,
    list_parts,
    read_part,
    remove_tree,
    write_json,
    write_table_atomic,
)

LABEL_PREFIX = "mined-"
CONFIDENCE = "mined_confidence"
LEFTOVERS = "leftovers.parquet"
MINE_JSON = "mine.json"
EMBEDDINGS = "embeddings"
STAGE = "mine"

log = logging.getLogger("clippings.mine")


@dataclass(frozen=True)
class MineRules:
    """The mining rule's settings (see the module docstring): `strictness` × the auto cut per tower,
    `ngram` and `min_jaccard` of the caption witness, the auto cut's `method`, the kNN `k` and the searches'
    `index` ("auto": exact flat up to clippings.link.auto.FLAT_MAX rows, ivf above; see `mine_embeddings`)."""

    strictness: float = STRICTNESS
    ngram: int = NGRAM
    min_jaccard: float = MIN_JACCARD
    method: str = DEFAULT_METHOD
    k: int = 20
    index: str = "auto"


@dataclass(frozen=True)
class TowerCut:
    """One tower's cuts: the label-free `auto` t with its valley `depth` (clear when ≥ MIN_DEPTH) and
    `strict` = strictness · auto."""

    tower: str
    auto: float
    strict: float
    depth: float
    clear: bool


@dataclass
class Mined:
    """The mining of n rows (aligned with `ids`): `label` (None: left out), `confidence` (NaN for
    singletons and left-out rows), `kind` ("group", "singleton" or "leftover"), `reason` (leftovers only),
    the two towers' cuts, the counts of pairs at each witness and the `search` used (index, and for ivf its
    measured recalls: `mine_embeddings`)."""

    ids: np.ndarray
    label: np.ndarray
    confidence: np.ndarray
    kind: np.ndarray
    reason: np.ndarray
    cuts: dict[str, TowerCut]
    pairs: dict[str, int] = field(default_factory=dict)
    search: dict[str, Any] = field(default_factory=dict)


GRAM_BITS = 7
"""Bits per character of a packed n-gram key: cleaned captions hold only 0-9, a-z and the space (ASCII)."""


def char_ngram_sets(captions: Sequence[str | None], n: int = NGRAM):
    """Each caption's set of character n-grams (of the cleaned words joined by one space) as
    clippings.baselines.NgramSets; a caption shorter than n characters has its whole text as one gram, an
    empty one none. A gram's key packs its characters (GRAM_BITS each) and its length, so the grams of all
    captions are found by whole-array operations. Cost: one Python pass to clean the captions, then sorts of
    the characters' positions (n ≤ MINE_MAX_NGRAM)."""
    from clippings.baselines import NgramSets, clean_caption

    if not 1 <= n <= MINE_MAX_NGRAM:
        raise BadInput(f"The 'ngram' parameter of mine must be an int in the range [1, {MINE_MAX_NGRAM}]. Got {n!r} instead.")
    texts = [" ".join(clean_caption(caption)) for caption in captions]
    lengths = np.fromiter(map(len, texts), np.int64, len(texts))
    chars = np.frombuffer("".join(texts).encode("ascii"), np.uint8).astype(np.int64)
    per_text = np.where(lengths >= n, lengths - n + 1, (lengths > 0).astype(np.int64))
    owner = np.repeat(np.arange(len(texts), dtype=np.int64), per_text)
    start = np.repeat(np.cumsum(lengths) - lengths - (np.cumsum(per_text) - per_text), per_text) + np.arange(
        int(per_text.sum()))
    size = np.minimum(lengths, n)[owner]
    key = size << (GRAM_BITS * MINE_MAX_NGRAM)
    for k in range(n):
        key |= np.where(k < size, chars[np.minimum(start + k, max(len(chars) - 1, 0))], 0) << (GRAM_BITS * k)
    vocab = unique_ints(key)
    pair = unique_ints(owner * max(len(vocab), 1) + np.searchsorted(vocab, key))
    owner, gram = pair // max(len(vocab), 1), pair % max(len(vocab), 1)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(owner, minlength=len(texts)))]).astype(np.int64)
    return NgramSets(indptr, gram.astype(np.int64), len(vocab))


def tower_cut(lengths: np.ndarray, tower: str, rules: MineRules) -> TowerCut:
    """The auto cut of one tower's MST edge `lengths` (clippings.link.auto.cut_of) and its strict version."""
    from clippings.link.auto import MIN_DEPTH, MIN_EDGES, cut_of

    if len(lengths) < MIN_EDGES:
        raise BadInput(f"mine: only {len(lengths) + 1} clippings embedded; at least {MIN_EDGES + 1} are needed to "
                       "read a cut from the edge lengths: give a larger archive")
    cut = cut_of(lengths, rules.method)
    return TowerCut(tower, cut.threshold, rules.strictness * cut.threshold, cut.depth, cut.depth >= MIN_DEPTH)


def _pairs_within(vectors: np.ndarray, threshold: float, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pairs (src < dst) at cosine distance ≤ threshold, all of them, with their float64 distances (flat
    kNN completed by range search: clippings.link.knn). Cost: O(n²·d)."""
    from clippings.link.knn import knn_graph

    graph = knn_graph(vectors, k=min(k, max(len(vectors) - 1, 1)), threshold=threshold, index="flat")
    keep = graph.distance <= threshold
    return graph.src[keep].astype(np.int64), graph.dst[keep].astype(np.int64), graph.distance[keep]


def _nearest(vectors: np.ndarray) -> np.ndarray:
    """Each row's distance to its nearest other row (inf for a lone row). Cost: one k = 1 flat kNN search."""
    from clippings.link.auto import nearest_of
    from clippings.link.knn import knn_graph

    if len(vectors) < 2:
        return np.full(len(vectors), np.inf)
    return nearest_of(knn_graph(vectors, k=1, index="flat"))


def _searches(image: np.ndarray, text: np.ndarray, has_caption: np.ndarray, rules: MineRules, index: str
              ) -> tuple[dict[str, TowerCut], np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                         dict[str, Any]]:
    """The neighbour searches of the rule: (cuts, candidate pairs a, b at the image tower's strict cut and
    their float64 image distances, nearest image distance, nearest caption distance among captioned rows (inf
    elsewhere), search record).

    flat (exact): the edge lengths of clippings.link.auto.neighbour_graph, every pair within the strict cut
    (`_pairs_within`) and a k = 1 search per tower (`_nearest`). ivf (archive scale): one
    clippings.link.auto.cells_knn graph per tower gives its MST's edge lengths (the reprint mode holds; the
    upper mode can only stretch) and each row's shortest edge as its nearest distance; the image tower's
    cells give the candidate pairs: the pairs within the strict cut among each row's k nearest
    (clippings.link.auto.cells_within, probes calibrated as link's ivf), O(n·k) where the exact pairs of a
    group of g reprints number g²/2, every pair of a group of up to k + 1 kept; `strict_pairs` records the
    shares of a sample's exact within-cut pairs kept (`pair_recall`) and joined (`joined_recall`).
    A found nearest distance is never below the true one, so a row could be wrongly found alone: a row
    with none within the auto cut is looked for again in more cells (`_nearest_at_scale`), and what is left
    of that error is measured per tower as `near_recall` (clippings.link.auto.recall_at the auto cut: of
    the sampled rows with a neighbour within it, the share found to have one). Where some rows lack a
    caption the caption distances come from a k = 1 ivf graph of the captioned rows."""
    from clippings.link.auto import FLAT_MAX, cells_within, lengths_of, neighbour_graph, recall_at

    graphs = {"image": neighbour_graph(image, rules.k, index), "text": neighbour_graph(text, rules.k, index)}
    cuts = {name: tower_cut(lengths_of(graph), name, rules) for name, graph in graphs.items()}
    search: dict[str, Any] = {"index": index, "flat_max": FLAT_MAX}
    near_text = np.full(len(image), np.inf)
    if index == "flat":
        a, b, di = _pairs_within(image, cuts["image"].strict, rules.k)
        near_text[has_caption] = _nearest(text[has_caption])
        return cuts, a, b, di, _nearest(image), near_text, search
    image_graph = graphs["image"]
    a, b, di, search["strict_pairs"] = cells_within(image, image_graph, cuts["image"].strict, rules.k)
    captioned, near = graphs["text"], {}
    if not has_caption.all():
        captioned = neighbour_graph(text[has_caption], 1, index) if has_caption.sum() >= 2 else None
    for name, vectors, graph in (("image", image, image_graph), ("text", text[has_caption], captioned)):
        if graph is None:  # one captioned row: no other caption to be near
            near[name] = np.full(len(vectors), np.inf)
            continue
        near[name] = _nearest_at_scale(vectors, graph, cuts[name].auto)
        search[name] = {"nlist": graph.stats["nlist"], "nprobe": graph.stats["nprobe"], "nn_recall": graph.recall,
                        "near_recall": recall_at(graph, cuts[name].auto, near[name]),
                        "timings": graph.stats["timings"]}
    near_text[has_caption] = near["text"]
    return cuts, a, b, di, near["image"], near_text, search


def _nearest_at_scale(vectors: np.ndarray, graph, auto: float) -> np.ndarray:
    """Each row's nearest distance from a cells_knn graph (`nearest_of`), where it lies beyond the `auto`
    cut looked for again in more cells (clippings.link.auto.nearest_within): a row is found alone only after
    that wider look."""
    from clippings.link.auto import nearest_of, nearest_within

    near = nearest_of(graph)
    far = np.flatnonzero(near > auto)
    if len(far):
        near[far] = np.minimum(near[far], nearest_within(vectors, graph, far, auto))
    return near


def _caption_echo(sets, min_jaccard: float, queries: np.ndarray) -> np.ndarray:
    """Each query caption's (`queries`: a boolean mask) highest n-gram Jaccard with any other caption, among
    pairs that may reach `min_jaccard` (clippings.baselines.candidate_pairs_of: prefix filtering with a cap
    that keeps the cost linear, so an echo through only very common n-grams can be missed); 0 where none
    does and for every row not asked."""
    from clippings.baselines import candidate_pairs_of, jaccard_of_pairs

    best = np.zeros(len(sets))
    if not queries.any():
        return best
    found = candidate_pairs_of(sets, min_jaccard, queries)
    if len(found.a):
        jac = jaccard_of_pairs(sets, found.a, found.b)
        np.maximum.at(best, found.a, jac)
        np.maximum.at(best, found.b, jac)
    return np.where(queries, best, 0.0)


def _margin(d: np.ndarray, t: float) -> np.ndarray:
    return np.ones_like(d) if t <= 0 else np.clip(1.0 - d / t, 0.0, 1.0)


def mine_embeddings(ids: np.ndarray, image: np.ndarray, text: np.ndarray, captions: Sequence[str | None],
                    rules: MineRules = MineRules()) -> Mined:
    """The mining rule (module docstring) over rows aligned with `ids`: unit `image` and `text` vectors
    (n, d) and `captions`. No I/O, no labels read.

    Searches (`_searches`, rules.index through clippings.link.auto.index_for): up to FLAT_MAX rows exact, two
    flat kNN graphs and MSTs, one range-completed kNN graph at the image tower's strict cut and two k = 1
    searches, O(n²·d); above, one ivf cells kNN graph and MST per tower, O(n^1.5·d), with their recalls in
    `search`. Then one prefix-filtered caption candidate pass for the rows in no group (at most ~40
    candidate pairs per caption);
    memory O(n·d + the candidate pairs at the strict cut).
    """
    from clippings.baselines import jaccard_of_pairs
    from clippings.link.auto import index_for
    from clippings.link.slink import mst_from_graph, stable_cluster_ids

    n = len(ids)
    sets = char_ngram_sets(captions, rules.ngram)
    has_caption = np.diff(sets.indptr) > 0
    cuts, a, b, di, near_image, near_text, search = _searches(image, text, has_caption, rules,
                                                              index_for(rules.index, n))
    for cut in cuts.values():
        if not cut.clear:
            log.warning("mine: the %s tower's edge lengths show no clear valley (depth %.3f); its cut t=%.4f is "
                        "used, the other witnesses carry the precision", cut.tower, cut.depth, cut.auto)
    ti, tt = cuts["image"].strict, cuts["text"].strict
    dt = cosine_distances_of_pairs(text, np.ones(n), a, b, chunk=1 << 16)  # unit rows: their norms are 1
    text_ok = dt <= tt
    jac = np.zeros(len(a))
    jac[text_ok] = jaccard_of_pairs(sets, a[text_ok], b[text_ok])
    mined = text_ok & (jac >= rules.min_jaccard)
    a, b, di, dt, jac = a[mined], b[mined], di[mined], dt[mined], jac[mined]
    conf = np.minimum.reduce([_margin(di, ti), _margin(dt, tt),
                              np.clip((jac - rules.min_jaccard) / max(1.0 - rules.min_jaccard, 1e-12), 0.0, 1.0)])
    # the most confident spanning forest (a minimum one on 1 − confidence): its weakest link per group
    tree = mst_from_graph(n, a, b, 1.0 - conf)
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(tree.src), np.int8), (tree.src, tree.dst)), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    sizes = np.bincount(comp, minlength=n)
    weakest = np.zeros(comp.max() + 1 if n else 0)
    np.maximum.at(weakest, comp[tree.src], tree.distance)
    in_group = sizes[comp] >= 2
    names = stable_cluster_ids(np.asarray(ids, object), comp)

    label = np.full(n, None, object)
    confidence = np.full(n, np.nan)
    kind = np.full(n, "leftover", object)
    reason = np.full(n, None, object)
    label[in_group] = np.char.add(LABEL_PREFIX, names[in_group].astype(str)).astype(object)
    confidence[in_group] = 1.0 - weakest[comp[in_group]]
    kind[in_group] = "group"

    echo = _caption_echo(sets, rules.min_jaccard, ~in_group)  # a row in a group needs no echo
    alone = (near_image > cuts["image"].auto) & (near_text > cuts["text"].auto) & (echo < rules.min_jaccard) & ~in_group
    label[alone] = np.char.add(LABEL_PREFIX, np.asarray(ids, object)[alone].astype(str)).astype(object)
    kind[alone] = "singleton"
    left = ~in_group & ~alone
    reason[left] = [
        f"in no confident group, yet not alone: nearest image at d={di_:.4f} (auto cut {cuts['image'].auto:.4f}), "
        f"nearest caption at d={dt_:.4f} (auto cut {cuts['text'].auto:.4f}), caption n-gram Jaccard {j_:.2f} with "
        f"another (bar {rules.min_jaccard:g})"
        for di_, dt_, j_ in zip(near_image[left], near_text[left], echo[left], strict=True)
    ]
    counts = {"image_strict": int(len(mined)), "image_and_text_strict": int(text_ok.sum()),
              "mined": int(mined.sum())}
    return Mined(np.asarray(ids, object), label, confidence, kind, reason, cuts, counts, search)


def split_val(mined: Mined, seed: int = 0, val_fraction: float = VAL_FRACTION) -> np.ndarray:
    """Which rows go to val (bool, n): whole groups, chosen by a seeded shuffle of the sorted labels, about
    `val_fraction` of the multi-member groups and of the singletons separately (at least one multi-member
    group each side when there are two or more). Leftover rows are False (they go nowhere)."""
    rng = np.random.default_rng([seed, 0x5EED])
    val = np.zeros(len(mined.ids), bool)
    for kind in ("group", "singleton"):
        labels = np.unique(mined.label[mined.kind == kind].astype(str))
        if not len(labels):
            continue
        take = int(round(val_fraction * len(labels)))
        if kind == "group" and len(labels) >= 2:
            take = min(max(take, 1), len(labels) - 1)
        chosen = set(labels[rng.permutation(len(labels))[:take]].tolist())
        rows = mined.kind == kind
        val[rows] = np.fromiter((x in chosen for x in mined.label[rows]), bool, int(rows.sum()))
    return val


def agreement(true_labels: Sequence[str | None], mined: Mined) -> dict[str, Any]:
    """The mined labels against labels the input happened to carry (rows with a true label only): pairwise
    precision and recall (clippings.evaluate.pairwise_prf; a left-out row or a singleton predicts no pair),
    and the share of kept singletons whose true label occurs once. Never used to mine."""
    from clippings.evaluate import pairwise_prf

    truth = np.asarray(true_labels, object)
    known = np.array([t is not None for t in truth])
    pred = np.where(mined.kind == "group", mined.label, np.char.add("row-", mined.ids.astype(str)).astype(object))
    prf = pairwise_prf(truth[known].astype(str), pred[known].astype(str))
    values, counts = np.unique(truth[known].astype(str), return_counts=True)
    once = dict(zip(values.tolist(), (counts == 1).tolist(), strict=True))
    singles = [once[t] for t, k in zip(truth[known], mined.kind[known], strict=True) if k == "singleton"]
    return {"rows_with_labels": int(known.sum()), "pair_precision": prf["precision"], "pair_recall": prf["recall"],
            "mined_pairs": prf["predicted_pairs"], "true_pairs": prf["true_pairs"],
            "correct_pairs": prf["true_positive_pairs"],
            "singletons_truly_alone": float(np.mean(singles)) if singles else None}


# ---------------------------------------------------------------- the archive in, the folders out


def _text_columns(archive: str) -> tuple[list[str], list[str | None], list[str | None] | None]:
    """(ids, captions, labels or None) of every part, without reading images."""
    import pyarrow.parquet as pq

    ids: list[str] = []
    captions: list[str | None] = []
    labels: list[str | None] = []
    any_label = False
    for part in list_parts(archive, "archive"):
        fs, inner = filesystem(part)
        with fs.open(inner, "rb") as f:
            names = pq.read_schema(f).names
        wanted = [c for c in ("clipping_id", "caption", "label") if c in names]
        table = read_part(part, "archive", wanted)
        n = table.num_rows
        ids += table.column("clipping_id").to_pylist() if "clipping_id" in names else [None] * n
        captions += table.column("caption").to_pylist() if "caption" in names else [None] * n
        if "label" in names:
            any_label = True
            labels += table.column("label").to_pylist()
        else:
            labels += [None] * n
    return ids, captions, (labels if any_label and any(x is not None for x in labels) else None)


def check_out(out: str, overwrite: bool) -> None:
    """Refuse an --out holding an earlier mining unless `overwrite`; with it, remove that mining's folders
    (the embeddings are cleared by the embed stage's own --overwrite)."""
    if exists(join(out, MINE_JSON)) and not overwrite:
        raise BadInput(f"mine: --out {out} already holds a mining ({MINE_JSON}); give --overwrite to replace it, "
                       "or another --out")
    if overwrite:
        for name in (MINE_JSON, LEFTOVERS, "train", "val"):
            remove_tree(join(out, name))


def write_mined(archive: str, out: str, mined: Mined, val: np.ndarray, quarantine: pa.Table,
                images: ImagePolicy = ARCHIVE_ONLY) -> dict[str, int]:
    """Write the kept rows as `out/train` and `out/val` (one part per input part that has rows there, its
    name kept) with the mined `label` and `mined_confidence`, and `out/leftovers.parquet`.

    Images given by `image_path` are read and stored inline (`image`), so the folders stand alone: a relative
    path would not resolve from them. A row whose image cannot be read is listed in the leftovers with the
    reason. Returns rows per split and leftovers. Memory: one input part at a time.
    """
    where = {i: r for r, i in enumerate(mined.ids.tolist())}
    counts = {"train": 0, "val": 0}
    extra_left: list[tuple[str, str]] = []
    for part in list_parts(archive, "archive"):
        table = read_part(part, "archive")
        validate_archive_part(table, part)
        table = normalise_archive(table)
        rows = np.array([where.get(i, -1) for i in table.column("clipping_id").to_pylist()], np.int64)
        kept = rows >= 0
        kept[kept] = mined.kind[rows[kept]] != "leftover"
        images_col = table.column("image").to_pylist()
        paths = table.column("image_path").to_pylist()
        for i in np.flatnonzero(kept & (table.column("image").is_null().to_numpy(zero_copy_only=False))):
            try:
                images_col[i] = read_row_image(archive, None, paths[i], images)
            except ValueError as e:
                kept[i] = False
                extra_left.append((table.column("clipping_id")[int(i)].as_py(), str(e)))
        table = table.set_column(table.schema.get_field_index("image"), "image", pa.array(images_col, pa.binary()))
        table = table.set_column(table.schema.get_field_index("image_path"), "image_path",
                                 pa.nulls(table.num_rows, pa.string()))
        safe = np.where(rows >= 0, rows, 0)
        table = table.set_column(table.schema.get_field_index("label"), "label",
                                 pa.array(mined.label[safe].tolist(), pa.string()))
        table = table.append_column(CONFIDENCE, pa.array(mined.confidence[safe], pa.float64()).fill_null(np.nan))
        name = part.rstrip("/").rsplit("/", 1)[-1]
        for split, mask in (("train", kept & ~val[safe]), ("val", kept & val[safe])):
            if mask.any():
                write_table_atomic(table.filter(pa.array(mask)), join(out, split, name))
                counts[split] += int(mask.sum())
    left = mined.kind == "leftover"
    ids = mined.ids[left].tolist() + [i for i, _ in extra_left] + quarantine.column("clipping_id").to_pylist()
    stages = [STAGE] * (int(left.sum()) + len(extra_left)) + quarantine.column("stage").to_pylist()
    reasons = mined.reason[left].tolist() + [r for _, r in extra_left] + quarantine.column("reason").to_pylist()
    write_table_atomic(pa.table({"clipping_id": ids, "stage": stages, "reason": reasons}, schema=QUARANTINE_SCHEMA),
                       join(out, LEFTOVERS))
    counts["leftovers"] = len(ids)
    counts["unreadable_images"] = len(extra_left)
    return counts


def mine_archive(archive: str, model: str, out: str, *, rules: MineRules = MineRules(), seed: int = 0,
                 val_fraction: float = VAL_FRACTION, images: ImagePolicy = ARCHIVE_ONLY, batch_size: int = 64,
                 gpu: bool = False, overwrite: bool = False, progress=None,
                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Embed `archive` with `model` into `out/embeddings` (resumable), mine it (`mine_embeddings`), split
    (`split_val`) and write `out/{train,val}`, `out/leftovers.parquet` and, last, `out/mine.json`, whose
    record is returned (with `extra` merged in). Ray must be initialised. Labels in the input are read only
    for `agreement`.

    Cost: one embedding pass, the mining (see `mine_embeddings`), one pass over the archive to write;
    driver memory: both towers (2·n·d·4 bytes), captions, one part's rows.
    """
    from clippings.embed import embed_archive
    from clippings.embeddings import read_embeddings

    start = time.perf_counter()
    ids, captions, true_labels = _text_columns(archive)
    check_out(out, overwrite)
    emb_dir = join(out, EMBEDDINGS)
    embed_archive(archive, model, emb_dir, batch_size=batch_size, gpu=gpu, images=images, progress=progress,
                  overwrite=overwrite)
    emb = read_embeddings(emb_dir)
    position = {i: r for r, i in enumerate(ids)}
    order = np.array([position[i] for i in emb.ids.tolist()], np.int64)
    mined = mine_embeddings(emb.ids, emb.image, emb.text, [captions[r] for r in order], rules)
    val = split_val(mined, seed, val_fraction)
    quarantine = read_quarantine(emb_dir)
    counts = write_mined(archive, out, mined, val, quarantine, images)
    groups = mined.kind == "group"
    record: dict[str, Any] = {
        "archive": archive, "fingerprint": emb.fingerprint,
        **round_settings(archive, model, rules, seed, val_fraction),
        "cuts": {name: asdict(cut) for name, cut in mined.cuts.items()},
        "pairs": mined.pairs,
        "search": mined.search,
        "counts": {
            "input_rows": len(ids), "embedded": int(len(emb.ids)), "quarantined_by_embed": quarantine.num_rows,
            "groups": int(len(np.unique(mined.label[groups].astype(str)))), "rows_in_groups": int(groups.sum()),
            "singletons": int((mined.kind == "singleton").sum()), **counts,
        },
        "seconds": round(time.perf_counter() - start, 2),
        **(extra or {}),
    }
    if true_labels is not None:
        record["agreement"] = agreement([true_labels[r] for r in order], mined)
    if counts["train"] + counts["val"] + counts["leftovers"] != len(ids):
        raise RuntimeError(f"mine: {len(ids)} input rows but {counts} written; every id must be accounted for")
    write_json(join(out, MINE_JSON), record)
    return record


def round_settings(archive: str, model: str, rules: MineRules, seed: int, val_fraction: float) -> dict[str, Any]:
    """What defines a mining's folders: the input archive's parts (`dataset_fingerprint`), the model and
    the rule's settings; `mine.json` records them, and a round resumes only with the same."""
    from clippings.settings import dataset_fingerprint

    return {"input": dataset_fingerprint(archive, "archive"), "model": model,
            "settings": {**asdict(rules), "seed": seed, "val_fraction": val_fraction}}


def _round_done(folder: str, wanted: dict[str, Any]) -> dict[str, Any] | None:
    """The record of a round already mined into `folder` with the `wanted` settings (`round_settings`);
    None when there is none. A record of others is refused, one line naming the first that differs
    (clippings.settings.check_settings): its folders would train another model."""
    from clippings.settings import check_settings
    from clippings.storage import read_json

    if not exists(join(folder, MINE_JSON)):
        return None
    record = read_json(join(folder, MINE_JSON))
    check_settings({k: record.get(k) for k in wanted}, wanted, f"mine: round folder {folder}", "--out")
    return record


def mine_rounds(archive: str, model: str, out: str, rounds: int = 1, *, rules: MineRules = MineRules(),
                seed: int = 0, val_fraction: float = VAL_FRACTION, images: ImagePolicy = ARCHIVE_ONLY,
                batch_size: int = 64, gpu: bool = False, overwrite: bool = False, epochs: int = 3,
                progress=None) -> dict[str, Any]:
    """Mine, then `rounds` − 1 times train SupCon on the mined folders and mine again with the model just
    trained (self-training: a better model finds more pairs at its own strict cuts).

    Round r < `rounds` mines into `out/round-r/` and trains `out/round-r/model` (clippings.train.supcon.
    train_supcon, `epochs` epochs, its checkpoints in `out/round-r/model_runs`, threshold tuned on the mined
    val); the last round mines into `out` itself, whose `mine.json` lists the earlier rounds (`rounds`). A
    re-run resumes: a round whose `mine.json` records the same settings and model is not mined again, and
    training resumes from its checkpoints; `overwrite` starts every round afresh. Refused (one line) when a
    round mines fewer than two groups for train or none for val. Ray must be initialised.
    Cost: `rounds` minings plus `rounds` − 1 trainings.
    """
    from clippings.train.supcon import train_supcon

    check_out(out, overwrite)
    current, history = model, []
    for r in range(1, rounds):
        folder = join(out, f"round-{r}")
        record = None if overwrite else _round_done(folder, round_settings(archive, current, rules, seed,
                                                                               val_fraction))
        if record is None:
            if overwrite:
                remove_tree(folder)
            record = mine_archive(archive, current, folder, rules=rules, seed=seed, val_fraction=val_fraction,
                                  images=images, batch_size=batch_size, gpu=gpu, overwrite=overwrite,
                                  progress=progress, extra={"round": r})
        else:
            log.info("mine: round %d already mined into %s; resuming", r, folder)
        counts = record["counts"]
        if counts["groups"] < 2 or not counts["val"]:
            raise BadInput(f"mine: round {r} mined {counts['groups']} groups ({counts['train']} train rows, "
                           f"{counts['val']} val rows): too few to train on; give a larger archive, a trained "
                           "--model or a lower --min-jaccard")
        trained = join(folder, "model")
        state = train_supcon(join(folder, "train"), join(folder, "val"), trained, model=current, epochs=epochs,
                             gpu=gpu, seed=seed, images=images, overwrite=overwrite)
        best = state["best"]
        log.info("mine: round %d: trained %s (ARI %.4f on the mined val)", r, trained, best["val_ari"])
        history.append({"round": r, "model": current, "folder": folder, "counts": counts, "cuts": record["cuts"],
                        "agreement": record.get("agreement"), "trained": trained,
                        "mined_val_ari": float(best["val_ari"])})
        current = trained
    return mine_archive(archive, current, out, rules=rules, seed=seed, val_fraction=val_fraction, images=images,
                        batch_size=batch_size, gpu=gpu, overwrite=overwrite, progress=progress,
                        extra={"round": rounds, "rounds": history})
