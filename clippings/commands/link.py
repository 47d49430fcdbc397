"""`clippings link`: single-linkage clusters of an embeddings dataset at a cosine-distance threshold."""

from __future__ import annotations

import argparse
import logging
from contextlib import ExitStack
from typing import TYPE_CHECKING

from clippings.link.auto import DEFAULT_METHOD, METHODS
from clippings.params import Interval, OneOf, validate_params

if TYPE_CHECKING:
    from clippings.embeddings import Embeddings, Pooled
    from clippings.link.auto import AutoCut

HELP = "Link clippings: exact single-linkage clusters of pooled embeddings at threshold t (FAISS kNN + MST)."

CONSTRAINTS = {
    "threshold": Interval(float, 0.0, 2.0),
    "im_wt": Interval(float, 0.0, 1.0),
    "k": Interval(int, 1, None),
    "index": OneOf(("flat", "ivf", "pruned")),
    "nlist": Interval(int, 1, None),
    "nprobe": Interval(int, 1, None),
    "search_actors": Interval(int, 0, None),
    "auto_method": OneOf(METHODS),
}


MODES = {
    "add": ("--add", "--add NEW_EMBEDDINGS --to LINKS_DIR --out DIR", ("to",), ("embeddings", "from_links")),
    "recut": ("--from-links", "--from-links LINKS_DIR --threshold T --out DIR", ("threshold",), ("embeddings", "to")),
    "link": ("without --add or --from-links", "--embeddings DIR --out DIR [--threshold T|auto]", ("embeddings",),
             ("to",)),
}
"""link's three modes, chosen by --add, else --from-links, else a plain link: (how the mode is named in a
message, its usage, the options it needs, the options it refuses). One table, so every refusal is one line
of the same shape: the mode, the option, the mode's usage."""


def mode_of(args: argparse.Namespace) -> str:
    """The mode `args` ask for ('add', 'recut' or 'link'), checked against MODES: BadInput (one line) for a
    missing or a refused option, and for --threshold auto outside a plain link."""
    from clippings.errors import BadInput

    mode = "add" if args.add else "recut" if args.from_links else "link"
    named, usage, needs, refuses = MODES[mode]
    for name, wrong in [*((n, "needs") for n in needs if getattr(args, n) is None),
                        *((n, "takes no") for n in refuses if getattr(args, n) is not None)]:
        raise BadInput(f"link {named} {wrong} --{name.replace('_', '-')}; usage: clippings link {usage}")
    if args.threshold == "auto" and mode != "link":
        raise BadInput(f"link {named} takes a number for --threshold: auto chooses t from --embeddings DIR; usage: "
                       f"clippings link {usage}")
    return mode


def threshold_arg(value: str) -> float | str:
    """--threshold: a float, or 'auto' (chosen from the embeddings alone: clippings.link.auto)."""
    if value == "auto":
        return value
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a float or 'auto', got {value!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--embeddings", default=None, help="embeddings folder (local or s3://)")
    parser.add_argument("--out", required=True, help="output links folder (local or s3://)")
    parser.add_argument(
        "--threshold",
        type=threshold_arg,
        default=None,
        help="cosine-distance threshold t; linked when d ≤ t (default: from --model); 'auto' chooses t, and w "
        "unless --im-wt or --model gives it, from the valley of the MST edge lengths, without labels, and "
        "stops with exit 2 where the lengths show no clear valley",
    )
    parser.add_argument(
        "--auto-method",
        default=DEFAULT_METHOD,
        help=f"with --threshold auto: how t is read from the edge lengths: {', '.join(METHODS)} "
        f"(default: {DEFAULT_METHOD}, provisional)",
    )
    parser.add_argument(
        "--im-wt",
        type=float,
        default=None,
        help="image weight w of the pooled embedding (default: from --model, else 0.5)",
    )
    parser.add_argument(
        "--k", type=int, default=20, help="neighbours per clipping in the kNN graph (default: 20)"
    )
    parser.add_argument(
        "--index",
        default="flat",
        help="flat (exact kNN), pruned (exact, ball-pruned cells: fastest on clustered data) or ivf "
        "(approximate range search, recall reported)",
    )
    parser.add_argument("--nlist", type=int, default=None, help="ivf cells (default: 2·√n, at least 16)")
    parser.add_argument(
        "--nprobe",
        type=int,
        default=None,
        help="ivf cells probed per query (default: the smallest of 1, 2, 3, 4, 6, 8, 12, … reaching recall 0.995 on "
        "a sample)",
    )
    parser.add_argument(
        "--search-actors",
        type=int,
        default=0,
        help="ivf: spread the range search over N Ray actors (local mode, or the cluster under 'ray job "
        "submit'); 0 searches in this process (default: 0)",
    )
    parser.add_argument(
        "--gpu",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the search's products on GPUs (float16, every candidate re-checked in float32): in this process, "
        "or with --search-actors N one GPU per actor; --no-gpu keeps them on CPUs (default: GPUs where this "
        "process sees CUDA, or where the Ray cluster has one per actor)",
    )
    parser.add_argument(
        "--index-dir",
        default=None,
        help="with --search-actors: folder (local or s3://) the actors load the IVF lists (the rows in cell "
        "order) from; on a cluster whose machines share no disk give an s3:// folder (default: a local "
        "temporary folder)",
    )
    parser.add_argument(
        "--model", default=None, help="model folder whose clippings.json gives threshold and im_wt"
    )
    parser.add_argument(
        "--from-links",
        default=None,
        help="re-cut the MST of this links folder at --threshold instead of recomputing",
    )
    parser.add_argument(
        "--add",
        default=None,
        metavar="NEW_EMBEDDINGS",
        help="link this new batch of embeddings into the links folder --to, searching only the new rows "
        "(exact for flat/pruned links, the links' own IVF cells for ivf); t, w and the index are the links'",
    )
    parser.add_argument(
        "--to", default=None, metavar="LINKS_DIR", help="the links folder --add extends (--out may equal it)"
    )


def _choice(args: argparse.Namespace) -> tuple[float, float]:
    from clippings.errors import BadInput
    from clippings.model_meta import read_clippings_meta

    meta = read_clippings_meta(args.model) if args.model else {}
    threshold = args.threshold if args.threshold is not None else meta.get("threshold")
    im_wt = args.im_wt if args.im_wt is not None else meta.get("im_wt", 0.5)
    if threshold is None:
        where = (
            f"model {args.model}'s clippings.json has no threshold" if args.model else "no --threshold given"
        )
        raise BadInput(f"link: {where}; give --threshold T or a --model tuned by 'clippings tune --model'")
    validate_params("link", {"threshold": threshold, "im_wt": im_wt}, CONSTRAINTS)
    return float(threshold), float(im_wt)


def _add(args: argparse.Namespace):
    """`--add NEW --to LINKS`: the merged LinkResult and the quarantine of both (refusals are one line)."""
    import pyarrow as pa

    from clippings.archive import read_quarantine
    from clippings.embeddings import read_embeddings
    from clippings.errors import BadInput
    from clippings.link.incremental import add_batch, check_batch, read_linking
    from clippings.model_meta import read_clippings_meta

    old = read_linking(args.to)
    meta = read_clippings_meta(args.model) if args.model else {}  # a model's choice must agree too
    threshold = args.threshold if args.threshold is not None else meta.get("threshold")
    if threshold is not None and threshold != old.info["threshold"]:
        raise BadInput(
            f"link --add: --threshold {threshold:g} differs from t = {old.info['threshold']:g} of links "
            f"{args.to}; a batch is added at the links' t (omit --threshold), then re-cut with --from-links"
        )
    new = read_embeddings(args.add)
    check_batch(old, new, args.add, args.im_wt if args.im_wt is not None else meta.get("im_wt"))
    result = add_batch(old, new)
    result.info["adds"][-1]["embeddings"] = args.add
    quarantine = pa.concat_tables([read_quarantine(args.to), read_quarantine(args.add)])
    return result, quarantine


def _auto(args: argparse.Namespace) -> tuple[Embeddings | Pooled, AutoCut]:
    """--threshold auto: (embeddings, AutoCut). w is fixed by --im-wt, else by --model's clippings.json,
    else chosen from clippings.link.auto.W_GRID (both towers read; one edge-length pass per weight)."""
    from clippings.embeddings import read_embeddings, read_pooled
    from clippings.link.auto import W_GRID, choose
    from clippings.model_meta import read_clippings_meta

    meta = read_clippings_meta(args.model) if args.model else {}
    im_wt = args.im_wt if args.im_wt is not None else meta.get("im_wt")
    if im_wt is None:
        emb = read_embeddings(args.embeddings)
        return emb, choose(emb, W_GRID, method=args.auto_method, k=args.k)
    validate_params("link", {"im_wt": im_wt}, CONSTRAINTS)
    emb = read_pooled(args.embeddings, float(im_wt))
    return emb, choose(emb, (float(im_wt),), method=args.auto_method, k=args.k)


def run(args: argparse.Namespace) -> int:
    auto = args.threshold == "auto"
    validate_params("link", {**vars(args), "threshold": None if auto else args.threshold}, CONSTRAINTS)
    from clippings.errors import BadInput
    from clippings.link.store import check_replaceable, same_location
    from clippings.logs import setup_logging
    from clippings.storage import is_remote

    log = setup_logging(args.out, "link")
    mode = mode_of(args)
    check_replaceable(args.out)
    source = args.to or args.from_links
    if source and is_remote(args.out) and same_location(args.out, source):
        raise BadInput(
            f"link: --out {args.out} is the links folder read: S3 cannot replace a folder at once; write to a "
            "new prefix"
        )
    with ExitStack() as stack:
        return _run(args, auto, mode, stack, log)


def _run(args: argparse.Namespace, auto: bool, mode: str, stack: ExitStack, log: logging.Logger) -> int:
    """run's body; `stack` holds what must outlive the links folder's writing (a spread link's folder)."""
    from clippings.archive import read_quarantine
    from clippings.link.pipeline import link_embeddings, recut, write_links
    from clippings.link.spread import embeddings_parts, spread_enabled, spread_folder, spread_link
    from clippings.logs import finish

    if mode == "add":
        result, quarantine = _add(args)
    elif mode == "recut":
        result = recut(args.from_links, args.threshold)
        quarantine = read_quarantine(args.from_links)
    else:
        from clippings.embeddings import read_pooled
        from clippings.progress import Progress

        cut = None
        if auto:
            emb, cut = _auto(args)
            threshold, im_wt = cut.threshold, cut.im_wt
            log.info("%s", cut.line("link"))
        else:
            threshold, im_wt = _choice(args)
        spread = not auto and args.index == "ivf" and args.search_actors > 0
        parts = embeddings_parts(args.embeddings) if spread else []
        if spread and spread_enabled(parts):
            # every pass over the rows in Ray tasks; the index folder lives until the links folder is written
            folder = stack.enter_context(spread_folder(args.index_dir))
            with Progress("link: kNN search", total=sum(rows for _, rows in parts), unit="query") as bar:
                result = spread_link(args.embeddings, parts, threshold, im_wt, folder, args.search_actors,
                                     args.nlist, args.nprobe, k=args.k, progress=bar.update, gpu=args.gpu,
                                     log=log.info)
        else:
            if not auto:
                emb = read_pooled(args.embeddings, im_wt)  # one part's towers at a time; the pooled rows mapped
            with Progress("link: kNN search", total=len(emb.ids), unit="query") as bar:
                result = link_embeddings(
                    emb,
                    threshold,
                    im_wt,
                    k=args.k,
                    index=args.index,
                    nlist=args.nlist,
                    nprobe=args.nprobe,
                    progress=bar.update,
                    search_actors=args.search_actors,
                    index_dir=args.index_dir,
                    gpu=args.gpu,
                )
        result.info["embeddings"] = args.embeddings
        if cut is not None:
            from clippings.link.auto import cut_table

            table = cut_table(result.mst, threshold, result.info["exact_up_to"])
            result.info["auto"] = {**cut.record(), "table": table}
        quarantine = read_quarantine(args.embeddings)
    result.info["counts"]["quarantined"] = quarantine.num_rows
    write_links(args.out, result, quarantine)
    info = result.info
    counts = info["counts"]
    finish(f"{counts['clippings']} clippings, {counts['clusters']} clusters at t={info['threshold']:.4f} "
           f"(w={info['im_wt']:g}, {info['index']}, exact up to {info['exact_up_to']:.4f}), "
           f"{quarantine.num_rows} quarantined")
    if args.add:
        last = info["adds"][-1]
        recall = "" if last["recall"] is None else f", recall {last['recall']:.4f}"
        log.info(
            "added %d clippings from %s in %.1f s (%s%s): %d clusters touched, see changes.parquet",
            last["rows"],
            args.add,
            last["seconds"],
            last["index"],
            recall,
            last["touched_clusters"],
        )
    for warning in info.get("diagnostics", {}).get("chaining_warnings", []):
        log.warning("warning: %s", warning)
    return 0
