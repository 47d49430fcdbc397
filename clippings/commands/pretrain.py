"""`clippings pretrain`: continue CLIP language-image pretraining on an archive's pairs, on Ray Train."""

from __future__ import annotations

import argparse

from clippings.commands import add_overwrite_argument
from clippings.commands.embed import add_image_arguments, image_policy
from clippings.params import Interval, validate_params

HELP = "Continue CLIP pretraining (symmetric InfoNCE) on an archive's image-caption pairs; resumes a run."

CONSTRAINTS = {
    "workers": Interval(int, 1, None),
    "epochs": Interval(int, 1, None),
    "batch_size": Interval(int, 2, None),
    "lr": Interval(float, 0.0, 1.0, open_low=True),
    "vision_lr": Interval(float, 0.0, 1.0),
    "text_lr": Interval(float, 0.0, 1.0),
    "view_weight": Interval(float, 0.0, None),
    "clip_weight": Interval(float, 0.0, None),
    "seed": Interval(int, 0, None),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--archive", required=True, help="archive dataset folder (local or s3://); labels ignored")
    parser.add_argument("--out", required=True, help="output model folder (local or s3://)")
    parser.add_argument("--model", default="tiny", help="start model: 'tiny', a folder, s3:// folder or hub id")
    parser.add_argument("--epochs", type=int, default=8, help="epochs (default: 8)")
    parser.add_argument("--batch-size", type=int, default=64, help="global batch, split across workers (64)")
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (default: 1e-3)")
    parser.add_argument("--seed", type=int, default=0, help="data order and held-out slice seed (default: 0)")
    parser.add_argument("--view-weight", type=float, default=0.0,
                        help="weight of an image-image term: each image against a re-scanned view of it, which "
                        "keeps the image tower telling prints apart, not only repeating captions (default: 0)")
    parser.add_argument("--clip-weight", type=float, default=1.0,
                        help="weight of the CLIP image-caption term; 0 with --view-weight > 0 and --text-lr 0 trains "
                        "the image tower on its views alone beside a pretrained text tower (default: 1)")
    add_encoder_lr_arguments(parser)
    add_ray_train_arguments(parser)
    add_image_arguments(parser)


def add_encoder_lr_arguments(parser: argparse.ArgumentParser) -> None:
    """Per-tower learning rates: a pretrained encoder (MiniLM, CLIP) wants a far lower rate than new heads."""
    parser.add_argument("--vision-lr", type=float, default=None,
                        help="peak learning rate of the vision encoder (default: --lr)")
    parser.add_argument("--text-lr", type=float, default=None,
                        help="peak learning rate of the text encoder (default: --lr)")


def add_ray_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of every Ray Train loop (pretrain and train): workers, GPUs, checkpoint storage, --overwrite."""
    parser.add_argument("--workers", type=int, default=1, help="Ray Train workers (default: 1)")
    parser.add_argument("--gpu", action="store_true", help="one GPU per worker, bf16 autocast, NCCL")
    parser.add_argument("--run-dir", default=None,
                        help="checkpoint storage (default: OUT_runs); a re-run with the same settings resumes")
    add_overwrite_argument(parser)


def run(args: argparse.Namespace) -> int:
    validate_params("pretrain", vars(args), CONSTRAINTS)
    images = image_policy(args)
    from clippings.logs import finish
    from clippings.train.pretrain import pretrain

    state = pretrain(args.archive, args.out, model=args.model, workers=args.workers, gpu=args.gpu,
                     epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                     vision_lr=args.vision_lr, text_lr=args.text_lr, view_weight=args.view_weight,
                     clip_weight=args.clip_weight, seed=args.seed,
                     run_dir=args.run_dir, images=images, overwrite=args.overwrite)
    best, last = state["best"], state["history"][-1]
    finish(f"{state['epoch']} epochs, best epoch {best['epoch']} (val loss {best['val_loss']:.4f}), "
           f"{last['samples_per_s']:.0f} samples/s")
    return 0
