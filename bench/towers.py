"""Image towers compared by the supervised visual row: `python -m bench.towers [--quick] [--towers a,b]`.

Each tower is composed with the MiniLM text tower (`clippings compose`), fine-tuned image-only with SupCon
(`clippings train --im-wt 1`, the supervised visual row's recipe) on the built-in archive's train split, and
scored by the best validation ARI over its epochs (threshold tuned exactly on val each epoch). Pixel cosine
(16 px grey thumbnails, t tuned on val) is the rule every learned tower has to beat. The machine's load
average is printed: the seconds are only comparable within one run on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

TOWERS = {"vit-onepatch": 12, "cnn": 12, "efficientnet-lite0": 3}
"""Towers and their epochs: EfficientNet-Lite0 at 128 px costs ~20× a small tower per image on a CPU."""


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.towers")
    parser.add_argument("--quick", action="store_true", help="400 stories, 2 epochs per tower")
    parser.add_argument("--stories", type=int, default=2000)
    parser.add_argument("--towers", default=",".join(TOWERS), help="comma-separated built-in vision towers")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from clippings.cli import main as cli
    from clippings.model import load_model
    from clippings.pixel_cosine import run_pixel_baseline
    from clippings.synth import generate

    stories = 400 if args.quick else args.stories
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = generate(os.path.join(tmp, "data"), stories=stories, seed=args.seed)
        began = time.perf_counter()
        pixels = run_pixel_baseline(data["val"], data["val"], os.path.join(tmp, "pixels"))
        rows.append(("pixel cosine (rule)", 16, 0, 0, pixels["val_ari"], time.perf_counter() - began))
        for tower in args.towers.split(","):
            epochs = 2 if args.quick else TOWERS.get(tower, 12)
            model, out = os.path.join(tmp, f"{tower}-composed"), os.path.join(tmp, f"{tower}-visual")
            assert cli(["compose", "--vision", tower, "--text", "minilm", "--out", model, "--seed",
                        str(args.seed)]) == 0
            began = time.perf_counter()
            assert cli(["train", "--archive", data["train"], "--val", data["val"], "--out", out, "--model", model,
                        "--im-wt", "1.0", "--epochs", str(epochs), "--seed", str(args.seed)]) == 0
            seconds = time.perf_counter() - began
            with open(os.path.join(out, "clippings.json")) as f:
                val_ari = json.load(f)["val_ari"]
            composed = load_model(model)
            size = composed.processor.image_processor.crop_size["height"]
            params = sum(p.numel() for p in composed.model.vision_model.parameters())
            rows.append((tower, size, params, epochs, val_ari, seconds))
    print(f"\nbuilt-in archive: {stories} stories, seed {args.seed}; load average {os.getloadavg()}")
    print(f"{'image tower':<22} {'px':>4} {'params':>9} {'epochs':>6} {'val ARI':>8} {'seconds':>8}")
    for name, px, params, epochs, ari, seconds in rows:
        print(f"{name:<22} {px:>4} {params:>9,} {epochs:>6} {ari:>8.3f} {seconds:>8.1f}")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
