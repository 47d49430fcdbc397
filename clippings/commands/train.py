"""`clippings train`: CLIPPINGS supervised contrastive fine-tuning on labelled reprint groups, on Ray Train."""

from __future__ import annotations

import argparse

from clippings.commands.embed import add_image_arguments, image_policy
from clippings.commands.pretrain import add_encoder_lr_arguments, add_ray_train_arguments
from clippings.params import Interval, validate_params

HELP = "Fine-tune a model with SupCon on hard-negative batches; tunes the threshold on --val; resumes a run."

CONSTRAINTS = {
    "im_wt": Interval(float, 0.0, 1.0),
    "m": Interval(int, 1, None),
    "k": Interval(int, 1, None),
    "temperature": Interval(float, 0.0, None, open_low=True),
    "groups_per_step": Interval(int, 1, None),
    "workers": Interval(int, 1, None),
    "epochs": Interval(int, 1, None),
    "lr": Interval(float, 0.0, 1.0, open_low=True),
    "vision_lr": Interval(float, 0.0, 1.0),
    "text_lr": Interval(float, 0.0, 1.0),
    "seed": Interval(int, 0, None),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--archive", required=True, help="labelled training archive folder (local or s3://)")
    parser.add_argument("--val", required=True, help="labelled validation archive (threshold and model choice)")
    parser.add_argument("--out", required=True, help="output model folder (local or s3://)")
    parser.add_argument("--model", required=True, help="start model: a pretrained folder, 'tiny' or a hub id")
    parser.add_argument("--im-wt", type=float, default=0.5, help="image weight w of the pooled embedding (0.5)")
    parser.add_argument("--m", type=int, default=3, help="items per class in a batch (default: 3)")
    parser.add_argument("--k", type=int, default=3, help="hard-negative classes per group (default: 3)")
    parser.add_argument("--temperature", type=float, default=0.1, help="SupCon temperature (default: 0.1)")
    parser.add_argument("--groups-per-step", type=int, default=8, help="k·m groups per optimizer step (8)")
    parser.add_argument("--epochs", type=int, default=10, help="epochs (default: 10)")
    parser.add_argument("--lr", type=float, default=5e-4, help="peak learning rate (default: 5e-4)")
    parser.add_argument("--seed", type=int, default=0, help="batch plan seed (default: 0)")
    add_encoder_lr_arguments(parser)
    add_ray_train_arguments(parser)
    add_image_arguments(parser)


def run(args: argparse.Namespace) -> int:
    validate_params("train", vars(args), CONSTRAINTS)
    images = image_policy(args)
    from clippings.logs import finish
    from clippings.train.supcon import train_supcon

    state = train_supcon(args.archive, args.val, args.out, model=args.model, im_wt=args.im_wt, m=args.m, k=args.k,
                         temperature=args.temperature, groups_per_step=args.groups_per_step,
                         workers=args.workers, gpu=args.gpu, epochs=args.epochs, lr=args.lr, seed=args.seed,
                         vision_lr=args.vision_lr, text_lr=args.text_lr,
                         run_dir=args.run_dir, images=images, overwrite=args.overwrite)
    best, last = state["best"], state["history"][-1]
    finish(f"{state['epoch']} epochs, best epoch {best['epoch']} (val ARI {best['val_ari']:.4f} at threshold "
           f"{best['threshold']:.4f}), {last['samples_per_s']:.0f} samples/s")
    return 0
