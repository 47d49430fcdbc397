"""`clippings link`: single-linkage clusters of an embeddings dataset at a cosine-distance threshold."""

from __future__ import annotations

import argparse

from clippings.params import Interval, OneOf, validate_params

HELP = "Link clippings: exact single-linkage clusters of pooled embeddings at threshold t (FAISS kNN + MST)."

CONSTRAINTS = {
    "threshold": Interval(float, 0.0, 2.0),
    "im_wt": Interval(float, 0.0, 1.0),
    "k": Interval(int, 1, None),
    "index": OneOf(("flat", "ivf", "pruned")),
    "nlist": Interval(int, 1, None),
    "nprobe": Interval(int, 1, None),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--embeddings", default=None, help="embeddings folder (local or s3://)")
    parser.add_argument("--out", required=True, help="output links folder (local or s3://)")
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="cosine-distance threshold t; linked when d ≤ t (default: from --model)",
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
    parser.add_argument("--nlist", type=int, default=None, help="ivf cells (default: 2·√n)")
    parser.add_argument(
        "--nprobe",
        type=int,
        default=None,
        help="ivf cells probed per query (default: the smallest power of two reaching recall 0.995 on "
        "a sample)",
    )
    parser.add_argument(
        "--model", default=None, help="model folder whose clippings.json gives threshold and im_wt"
    )
    parser.add_argument(
        "--from-links",
        default=None,
        help="re-cut the MST of this links folder at --threshold instead of recomputing",
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


def run(args: argparse.Namespace) -> int:
    validate_params("link", vars(args), CONSTRAINTS)
    from clippings.archive import read_quarantine, write_quarantine
    from clippings.errors import BadInput
    from clippings.link.pipeline import link_embeddings, recut, write_links
    from clippings.logs import setup_logging

    log = setup_logging(args.out, "link")
    if args.from_links:
        if args.threshold is None:
            raise BadInput("link: --from-links needs --threshold T (the new cut)")
        result = recut(args.from_links, args.threshold)
        quarantine = read_quarantine(args.from_links)
    else:
        if not args.embeddings:
            raise BadInput("link: give --embeddings DIR (or --from-links DIR to re-cut a saved MST)")
        from clippings.embeddings import read_embeddings

        threshold, im_wt = _choice(args)
        result = link_embeddings(
            read_embeddings(args.embeddings),
            threshold,
            im_wt,
            k=args.k,
            index=args.index,
            nlist=args.nlist,
            nprobe=args.nprobe,
        )
        result.info["embeddings"] = args.embeddings
        quarantine = read_quarantine(args.embeddings)
    result.info["counts"]["quarantined"] = quarantine.num_rows
    write_links(args.out, result)
    write_quarantine(args.out, quarantine, "part-00000.parquet")
    info = result.info
    log.info(
        "link -> %s: %d clippings, %d clusters at t=%g (w=%g, %s, exact up to %g), %d quarantined",
        args.out,
        info["counts"]["clippings"],
        info["counts"]["clusters"],
        info["threshold"],
        info["im_wt"],
        info["index"],
        info["exact_up_to"],
        quarantine.num_rows,
    )
    for warning in info.get("diagnostics", {}).get("chaining_warnings", []):
        log.warning("warning: %s", warning)
    return 0
