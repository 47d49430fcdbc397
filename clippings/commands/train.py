"""`clippings train`: CLIPPINGS supervised contrastive fine-tuning on labelled reprint groups, on Ray Train."""

from __future__ import annotations

import argparse
from dataclasses import asdict

from clippings.commands.embed import add_image_arguments, image_policy
from clippings.commands.pretrain import add_encoder_lr_arguments, add_ray_train_arguments, settings_of
from clippings.params import Interval, validate_params
from clippings.train.settings import SupConSettings

HELP = "Fine-tune a model with SupCon on hard-negative batches; tunes the threshold on --val; resumes a run."

CONSTRAINTS = {"workers": Interval(int, 1, None)}  # the settings' own: clippings.train.settings
DEFAULTS = SupConSettings()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--archive", required=True, help="labelled training archive folder (local or s3://)")
    parser.add_argument("--val", required=True, help="labelled validation archive (threshold and model choice)")
    parser.add_argument("--out", required=True, help="output model folder (local or s3://)")
    parser.add_argument("--model", required=True, help="start model: a pretrained folder, 'tiny' or a hub id")
    parser.add_argument("--im-wt", type=float, default=DEFAULTS.im_wt,
                        help="image weight w of the pooled embedding (%(default)s)")
    parser.add_argument("--m", type=int, default=DEFAULTS.m, help="items per class in a batch (default: %(default)s)")
    parser.add_argument("--k", type=int, default=DEFAULTS.k, help="hard-negative classes per group (default: %(default)s)")
    parser.add_argument("--temperature", type=float, default=DEFAULTS.temperature,
                        help="SupCon temperature (default: %(default)s)")
    parser.add_argument("--groups-per-step", type=int, default=DEFAULTS.groups_per_step,
                        help="k·m groups per optimizer step (%(default)s)")
    parser.add_argument("--epochs", type=int, default=DEFAULTS.epochs, help="epochs (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=DEFAULTS.lr, help="peak learning rate (default: %(default)s)")
    parser.add_argument("--view-p", type=float, default=DEFAULTS.view_p,
                        help="probability that a training image is replaced by another print and scan of it "
                             "(crop, rotation, tone, screen, blur, grain; default: %(default)s)")
    parser.add_argument("--seed", type=int, default=DEFAULTS.seed,
                        help="batch plan and view seed (default: %(default)s)")
    add_encoder_lr_arguments(parser)
    add_ray_train_arguments(parser)
    add_image_arguments(parser)


def run(args: argparse.Namespace) -> int:
    validate_params("train", vars(args), CONSTRAINTS)
    settings = settings_of(SupConSettings, args)  # refused here, before the heavy imports below
    images = image_policy(args)
    from clippings.logs import finish
    from clippings.train.supcon import train_supcon

    state = train_supcon(args.archive, args.val, args.out, model=args.model, workers=args.workers, gpu=args.gpu,
                         run_dir=args.run_dir, images=images, overwrite=args.overwrite, **asdict(settings))
    best, last = state["best"], state["history"][-1]
    finish(f"{state['epoch']} epochs, best epoch {best['epoch']} (val ARI {best['val_ari']:.4f} at threshold "
           f"{best['threshold']:.4f}), {last['samples_per_s']:.0f} samples/s")
    return 0
