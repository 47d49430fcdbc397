"""`clippings replicate`: the paper's table (plus rule and frozen rows) on a labelled archive, in local Ray mode."""

from __future__ import annotations

import argparse

from clippings.commands import add_overwrite_argument
from clippings.commands.embed import add_image_arguments, image_policy
from clippings.params import Interval, validate_params
from clippings.synth.difficulty import DIFFICULTIES

CONSTRAINTS = {
    "stories": Interval(int, 10, None),
    "pretrain_epochs": Interval(int, 1, None),
    "train_epochs": Interval(int, 1, None),
    "workers": Interval(int, 1, None),
    "seeds": Interval(int, 1, None),
    "view_weight": Interval(float, 0.0, None),
    "clip_weight": Interval(float, 0.0, None),
}

HELP = "Replicate the paper's table (Jaccard, self-supervised and supervised rows) on an archive."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder (results.md, results.json, every stage)")
    parser.add_argument("--scale", choices=("small", "medium", "paper"), default="small",
                        help="small: tiny CLIP within ~10 min on 2 CPUs; medium: the built-in pretrained 'minilm' "
                             "model on the same archive; paper: the paper's sizes and settings")
    parser.add_argument("--seeds", type=int, default=1,
                        help="repeat over seeds 0..N-1 into OUT/seed-<s>/ and report mean ± sd (default: 1)")
    parser.add_argument("--archive", default=None,
                        help="folder with unlabelled/train/val/test splits (default: the built-in archive)")
    parser.add_argument("--label-free", action="store_true",
                        help="add the rows that read no labels but test's (the self-supervised model at the auto t "
                             "and w; SupCon on groups mined from unlabelled) and every row's test ARI at the auto t")
    add_scale_overrides(parser)
    add_image_arguments(parser)


def add_scale_overrides(parser: argparse.ArgumentParser) -> None:
    """Flags shared by replicate and demo: seed, the built-in archive's difficulty, overrides of the scale's
    sizes, --overwrite."""
    parser.add_argument("--seed", type=int, default=0, help="seed of the built-in archive and training")
    parser.add_argument("--difficulty", choices=tuple(DIFFICULTIES), default=None,
                        help="the built-in archive's scans and OCR (default: mild, the table's; see clippings synth)")
    parser.add_argument("--stories", type=int, default=None, help="built-in archive size (overrides the scale)")
    parser.add_argument("--pretrain-epochs", type=int, default=None, help="overrides the scale's pretrain epochs")
    parser.add_argument("--train-epochs", type=int, default=None, help="overrides the scale's SupCon epochs")
    parser.add_argument("--workers", type=int, default=None, help="Ray Train workers (overrides the scale)")
    parser.add_argument("--view-weight", type=float, default=None,
                        help="pretraining's image-image view term (overrides the scale; see clippings pretrain)")
    parser.add_argument("--clip-weight", type=float, default=None,
                        help="pretraining's CLIP term (overrides the scale; see clippings pretrain)")
    add_overwrite_argument(parser)


def scale_overrides(args: argparse.Namespace) -> dict:
    """The validated seed, difficulty, scale overrides and --overwrite of replicate/demo as keyword arguments of
    `replicate`."""
    validate_params(args.command, vars(args), CONSTRAINTS)
    return {"seed": args.seed, "difficulty": args.difficulty, "stories": args.stories, "pretrain_epochs": args.pretrain_epochs,
            "train_epochs": args.train_epochs, "workers": args.workers, "view_weight": args.view_weight,
            "clip_weight": args.clip_weight, "overwrite": args.overwrite}


def run(args: argparse.Namespace) -> int:
    from clippings.logs import finish, setup_logging, show_path
    from clippings.replicate import replicate_seeds
    from clippings.results_table import print_table
    from clippings.storage import join

    images = image_policy(args)
    overrides = scale_overrides(args)
    setup_logging(args.out, "replicate")
    results = replicate_seeds(args.out, args.seeds, scale=args.scale, archive=args.archive, images=images,
                              label_free=args.label_free, **overrides)
    print_table(results)
    finish(f"{len(results['rows'])} rows", then=f"Open next: {show_path(join(args.out, 'results.md'))} (the table); "
           f"'clippings status {show_path(args.out)}' lists the stages and their times.")
    return 0
