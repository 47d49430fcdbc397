"""`clippings pretrain`: continue CLIP language-image pretraining on an archive's pairs, on Ray Train."""

from __future__ import annotations

import argparse
from dataclasses import asdict, fields

from clippings.commands import add_overwrite_argument
from clippings.commands.embed import add_image_arguments, image_policy
from clippings.params import Interval, validate_params
from clippings.train.settings import PretrainSettings

HELP = "Continue CLIP pretraining (symmetric InfoNCE) on an archive's image-caption pairs; resumes a run."

CONSTRAINTS = {"workers": Interval(int, 1, None)}  # the settings' own: clippings.train.settings
DEFAULTS = PretrainSettings()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--archive", required=True, help="archive dataset folder (local or s3://); labels ignored")
    parser.add_argument("--out", required=True, help="output model folder (local or s3://)")
    parser.add_argument("--model", default="tiny", help="start model: 'tiny', a folder, s3:// folder or hub id")
    parser.add_argument("--epochs", type=int, default=DEFAULTS.epochs, help="epochs (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size,
                        help="global batch, split across workers (%(default)s)")
    parser.add_argument("--lr", type=float, default=DEFAULTS.lr, help="peak learning rate (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=DEFAULTS.seed,
                        help="data order and held-out slice seed (default: %(default)s)")
    parser.add_argument("--view-weight", type=float, default=DEFAULTS.view_weight,
                        help="weight of an image-image term: each image against a re-scanned view of it, which "
                        "keeps the image tower telling prints apart, not only repeating captions (default: %(default)s)")
    parser.add_argument("--clip-weight", type=float, default=DEFAULTS.clip_weight,
                        help="weight of the CLIP image-caption term; 0 with --view-weight > 0 and --text-lr 0 trains "
                        "the image tower on its views alone beside a pretrained text tower (default: %(default)s)")
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


def settings_of(kind: type, args: argparse.Namespace):
    """The `kind` of training settings (`clippings.train.settings`) that the flags of the same names hold."""
    return kind(**{f.name: getattr(args, f.name) for f in fields(kind)})


def run(args: argparse.Namespace) -> int:
    validate_params("pretrain", vars(args), CONSTRAINTS)
    settings = settings_of(PretrainSettings, args)  # refused here, before the heavy imports below
    images = image_policy(args)
    from clippings.logs import finish
    from clippings.train.pretrain import pretrain

    state = pretrain(args.archive, args.out, model=args.model, workers=args.workers, gpu=args.gpu,
                     run_dir=args.run_dir, images=images, overwrite=args.overwrite, **asdict(settings))
    best, last = state["best"], state["history"][-1]
    finish(f"{state['epoch']} epochs, best epoch {best['epoch']} (val loss {best['val_loss']:.4f}), "
           f"{last['samples_per_s']:.0f} samples/s")
    return 0
