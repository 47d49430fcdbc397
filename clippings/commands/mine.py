"""`clippings mine`: pseudo-labelled train/val folders from an unlabelled archive (clippings.mine)."""

from __future__ import annotations

import argparse

from clippings.commands import add_overwrite_argument
from clippings.commands.embed import add_image_arguments, image_policy
from clippings.link.auto import DEFAULT_METHOD, FLAT_MAX, INDEXES, METHODS
from clippings.params import (
    MINE_MAX_NGRAM,
    MINE_MIN_JACCARD,
    MINE_NGRAM,
    MINE_STRICTNESS,
    MINE_VAL_FRACTION,
    Interval,
    OneOf,
    validate_params,
)

HELP = ("Mine pseudo-labelled train/val folders from an unlabelled archive: groups whose pairs the image tower, "
        "the text tower (each at a strict label-free cut) and caption character n-grams all agree on.")

CONSTRAINTS = {
    "rounds": Interval(int, 1, None),
    "strictness": Interval(float, 0.0, 1.0, open_low=True),
    "ngram": Interval(int, 1, MINE_MAX_NGRAM),
    "min_jaccard": Interval(float, 0.0, 1.0, open_low=True),
    "auto_method": OneOf(METHODS),
    "k": Interval(int, 1, None),
    "index": OneOf(INDEXES),
    "seed": Interval(int, 0, None),
    "val_fraction": Interval(float, 0.0, 1.0, open_low=True, open_high=True),
    "batch_size": Interval(int, 1, None),
    "epochs": Interval(int, 1, None),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--archive", required=True, help="unlabelled archive folder (local or s3://)")
    parser.add_argument("--model", required=True, help="model: a folder, an s3:// folder, 'tiny' or a hub id")
    parser.add_argument("--out", required=True,
                        help="output folder: train/, val/ (labelled archives), leftovers.parquet, mine.json, "
                             "embeddings/")
    parser.add_argument("--rounds", type=int, default=1,
                        help="mine, then R−1 times: train SupCon on the mined folders and mine again with that "
                             "model (default: 1)")
    parser.add_argument("--strictness", type=float, default=MINE_STRICTNESS,
                        help="each tower's strict cut = this × its label-free auto cut "
                             f"(default: {MINE_STRICTNESS})")
    parser.add_argument("--ngram", type=int, default=MINE_NGRAM,
                        help=f"character n-gram size of the caption witness (default: {MINE_NGRAM})")
    parser.add_argument("--min-jaccard", type=float, default=MINE_MIN_JACCARD,
                        help="a mined pair's captions share at least this Jaccard similarity of character n-grams "
                             f"(default: {MINE_MIN_JACCARD})")
    parser.add_argument("--auto-method", default=DEFAULT_METHOD,
                        help=f"how each tower's auto cut is read from its MST edge lengths: {', '.join(METHODS)} "
                             f"(default: {DEFAULT_METHOD})")
    parser.add_argument("--k", type=int, default=20, help="neighbours per clipping in the kNN graphs (default: 20)")
    parser.add_argument("--index", default="auto",
                        help=f"the neighbour searches: flat (exact kNN, O(n²·d)), ivf (IVF cells' kNN: archive scale, "
                             f"recalls measured on a sample and recorded in mine.json) or auto (flat up to "
                             f"{FLAT_MAX:,} rows, ivf above; default)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the train/val split of the groups (default: 0)")
    parser.add_argument("--val-fraction", type=float, default=MINE_VAL_FRACTION,
                        help=f"share of the groups put in val (default: {MINE_VAL_FRACTION})")
    parser.add_argument("--batch-size", type=int, default=64, help="rows per model call when embedding (64)")
    parser.add_argument("--gpu", action="store_true", help="embed (and train, with --rounds) on GPUs")
    parser.add_argument("--epochs", type=int, default=3,
                        help="with --rounds R > 1: SupCon epochs per round (default: 3)")
    add_overwrite_argument(parser)
    add_image_arguments(parser)


def run(args: argparse.Namespace) -> int:
    validate_params("mine", vars(args), CONSTRAINTS)
    images = image_policy(args)
    from clippings.logs import finish, setup_logging
    from clippings.mine import MineRules, mine_rounds
    from clippings.progress import Progress
    from clippings.raylocal import init_ray
    from clippings.storage import list_parts

    log = setup_logging(args.out, "mine")
    list_parts(args.archive, "archive")  # a missing or empty archive is one line before Ray starts
    rules = MineRules(strictness=args.strictness, ngram=args.ngram, min_jaccard=args.min_jaccard,
                      method=args.auto_method, k=args.k, index=args.index)
    init_ray()
    with Progress("mine: embed", unit="row") as bar:
        record = mine_rounds(args.archive, args.model, args.out, args.rounds, rules=rules, seed=args.seed,
                             val_fraction=args.val_fraction, images=images, batch_size=args.batch_size,
                             gpu=args.gpu, overwrite=args.overwrite, epochs=args.epochs, progress=bar)
    for earlier in record.get("rounds", []):
        agree = earlier.get("agreement")
        shown = (f", pair precision {agree['pair_precision']:.3f}, recall {agree['pair_recall']:.3f} against the "
                 "input's labels" if agree else "")
        log.info("mine: round %d: %d groups, %d train and %d val rows%s; trained %s", earlier["round"],
                 earlier["counts"]["groups"], earlier["counts"]["train"], earlier["counts"]["val"], shown,
                 earlier["trained"])
    cuts = record["cuts"]
    log.info("mine: strict cuts image t=%.4f (auto %.4f), text t=%.4f (auto %.4f)", cuts["image"]["strict"],
             cuts["image"]["auto"], cuts["text"]["strict"], cuts["text"]["auto"])
    search = record["search"]
    if search["index"] == "ivf":
        log.info("mine: ivf search (more than %d rows): nearest-neighbour recall image %.3f, text %.3f; rows with a "
                 "neighbour within the auto cut found so: image %.4f, text %.4f; pairs within the strict image cut "
                 "kept %.4f, joined %.4f (samples against brute force)", search["flat_max"],
                 search["image"]["nn_recall"], search.get("text", {}).get("nn_recall", 1.0),
                 search["image"]["near_recall"], search.get("text", {}).get("near_recall", 1.0),
                 search["strict_pairs"]["pair_recall"], search["strict_pairs"]["joined_recall"])
    c = record["counts"]
    agree = record.get("agreement")
    extra = (f"; against the input's labels: pair precision {agree['pair_precision']:.3f}, recall "
             f"{agree['pair_recall']:.3f}" if agree else "")
    finish(f"{c['groups']} groups ({c['rows_in_groups']} rows), {c['singletons']} singletons; train {c['train']}, "
           f"val {c['val']} rows, {c['leftovers']} left out (leftovers.parquet){extra}")
    return 0
