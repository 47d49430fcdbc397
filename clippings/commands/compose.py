"""`clippings compose`: a two-tower model from any vision encoder and any text encoder."""

from __future__ import annotations

import argparse

from clippings.params import (
    POOLINGS,
    TEXT_BUILTINS,
    VISION_BUILTINS,
    Interval,
    OneOf,
    validate_params,
)

HELP = "Build a two-tower model (VisionTextDualEncoder) from a vision and a text encoder; writes a model folder."

CONSTRAINTS = {
    "projection_dim": Interval(int, 1, None),
    "seed": Interval(int, 0, None),
    "text_pooling": OneOf(POOLINGS),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--vision", required=True,
                        help=f"vision encoder: {', '.join(VISION_BUILTINS)}, a hub id or a local folder")
    parser.add_argument("--text", required=True,
                        help=f"text encoder: {', '.join(TEXT_BUILTINS)}, a hub id or a local folder")
    parser.add_argument("--out", required=True, help="output model folder (local or s3://)")
    parser.add_argument("--text-pooling", default="auto", choices=POOLINGS,
                        help="auto (default): mean for sentence-transformers encoders, else the encoder's pooler")
    parser.add_argument("--projection-dim", type=int, default=None,
                        help="width of the shared embedding (default: the text encoder's hidden size)")
    parser.add_argument("--seed", type=int, default=0, help="seed of new weights (heads, built-in towers)")


def run(args: argparse.Namespace) -> int:
    validate_params("compose", vars(args), CONSTRAINTS)
    from clippings.logs import finish
    from clippings.model import save_model, text_pooling, weights_fingerprint
    from clippings.towers import compose
    from clippings.train.fit import code_provenance

    model, processor = compose(args.vision, args.text, pooling=args.text_pooling,
                               projection_dim=args.projection_dim, seed=args.seed)
    meta = {"stage": "compose", "vision": args.vision, "text": args.text, "text_pooling": text_pooling(model),
            "projection_dim": int(model.config.projection_dim), "seed": args.seed, "code": code_provenance()}
    save_model(model, processor, args.out, meta)
    finish(f"vision {args.vision} + text {args.text}, {text_pooling(model)} pooling, "
           f"{model.config.projection_dim}-d, {weights_fingerprint(model)}")
    return 0
