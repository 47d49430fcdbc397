"""Image towers compared by the supervised visual row: `python -m bench.towers [--quick] [--towers a,b:E]
[--seeds N] [--difficulty hard|mild]`.

Each tower is composed with the MiniLM text tower (`clippings compose`), fine-tuned image-only with SupCon
(`clippings train --im-wt 1`, the supervised visual row's recipe) on the built-in archive's train split, and
scored by the best validation ARI over its epochs (threshold tuned exactly on val each epoch). Pixel cosine
(16 px grey thumbnails, t tuned on val) is the rule every learned tower has to beat. The test split is never
read. Seeds: for each s in seed..seed+N-1 the archive is generated with seed s and every tower is composed
and trained with seed s; the table gives the mean ± sample sd of the best val ARI over the seeds.

Training views: with `--view-p 0` (the default) SupCon sees each train image as it is in the archive, and a
tower learns what survives reprinting from the archive's own reprints of one photo, each printed and scanned
with its own draw of the difficulty's degradations (crops, rotation, screens, tone, JPEG for `hard`). A
value p > 0 also replaces each training image, at each step, with probability p by a view drawn from the
hard family (`clippings train --view-p`, `clippings.train.views.scan_view`). The train split's stories and
draws are disjoint from the test split's; the views are drawn from the training seed, never the test's.

The machine's load average is printed before and after: the seconds are only comparable within one run on
a quiet machine. `--json PATH` also writes every (tower, seed) row.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import tempfile
import time

TOWERS = {"vit-onepatch": 12, "vit-patch8-64": 12, "cnn": 12, "cnn-pool": 12, "efficientnet-lite0": 3}
"""Towers and their epochs: EfficientNet-Lite0 at 128 px costs ~220× the one-patch tower's forward per image on
one core and ~10–20× a small tower's training time per epoch (docs/benchmarks.md#image-towers-on-the-hard-archive)."""
PIXELS = "pixel cosine (rule)"


def parse_towers(text: str, epochs: int | None) -> list[tuple[str, int]]:
    """`a,b:E` -> [(a, epochs or TOWERS[a]), (b, E)]: a tower's own `:E` beats --epochs beats TOWERS."""
    towers = []
    for item in text.split(","):
        name, _, own = item.partition(":")
        towers.append((name, int(own) if own else epochs or TOWERS.get(name, 12)))
    return towers


def forward_ms(model, size: int, images: int = 32, repeats: int = 3) -> float:
    """Milliseconds per image of the vision tower's forward on one thread: the best of `repeats` batches of
    `images` random pixels (no grad; the best, because other work on the machine only ever adds time)."""
    import torch

    x = torch.randn(images, 3, size, size)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    best = float("inf")
    try:
        with torch.no_grad():
            model(pixel_values=x[:4])
            for _ in range(repeats):
                began = time.perf_counter()
                model(pixel_values=x)
                best = min(best, time.perf_counter() - began)
    finally:
        torch.set_num_threads(threads)
    return best / images * 1000


def run_seed(seed: int, stories: int, difficulty: str, towers: list[tuple[str, int]], tmp: str,
             view_ps: list[float]) -> list[dict]:
    """One archive (seed), pixel cosine on it, then each tower composed and, for each view probability,
    trained and scored with that seed."""
    from clippings.cli import main as cli
    from clippings.model import load_model
    from clippings.pixel_cosine import run_pixel_baseline
    from clippings.synth import generate

    root = os.path.join(tmp, f"seed{seed}")
    data = generate(os.path.join(root, "data"), stories=stories, seed=seed, difficulty=difficulty)
    began = time.perf_counter()
    pixels = run_pixel_baseline(data["val"], data["val"], os.path.join(root, "pixels"))
    rows = [{"tower": PIXELS, "seed": seed, "px": 16, "params": 0, "epochs": 0, "val_ari": pixels["val_ari"],
             "best_epoch": None, "seconds": time.perf_counter() - began, "fwd_ms": None}]
    for (tower, epochs), view_p in itertools.product(towers, view_ps):
        name = f"{tower} (views {view_p:g})" if view_p else tower
        model, out = os.path.join(root, f"{tower}-composed"), os.path.join(root, f"{tower}-visual-views{view_p:g}")
        if not os.path.exists(model):
            assert cli(["compose", "--vision", tower, "--text", "minilm", "--out", model, "--seed", str(seed)]) == 0
        load = os.getloadavg()[0]
        began = time.perf_counter()
        assert cli(["train", "--archive", data["train"], "--val", data["val"], "--out", out, "--model", model,
                    "--im-wt", "1.0", "--epochs", str(epochs), "--seed", str(seed), "--view-p", str(view_p)]) == 0
        seconds = time.perf_counter() - began
        with open(os.path.join(out, "clippings.json")) as f:
            record = json.load(f)
        composed = load_model(model)
        size = composed.processor.image_processor.crop_size["height"]
        vision = composed.model.vision_model
        rows.append({"tower": name, "seed": seed, "px": size, "params": sum(p.numel() for p in vision.parameters()),
                     "epochs": epochs, "val_ari": record["val_ari"], "best_epoch": record.get("epoch"),
                     "seconds": seconds, "load": load, "fwd_ms": forward_ms(vision, size)})
        print(f"seed {seed} {name}: val ARI {record['val_ari']:.3f}, {seconds:.0f} s (load {load:.1f})",
              flush=True)
    return rows


def summary(rows: list[dict]) -> list[str]:
    """The table: one line per tower, mean ± sample sd of the best val ARI over its seeds, per-seed values."""
    lines = [f"{'image tower':<22} {'px':>4} {'params':>9} {'epochs':>6} {'val ARI mean ± sd (n)':<25} "
             f"{'per seed':<36} {'train s':>8} {'fwd ms/img':>10}"]
    for tower in dict.fromkeys(r["tower"] for r in rows):
        mine = [r for r in rows if r["tower"] == tower]
        aris = [r["val_ari"] for r in mine]
        sd = statistics.stdev(aris) if len(aris) > 1 else float("nan")
        fwd = [r["fwd_ms"] for r in mine if r["fwd_ms"] is not None]
        per_seed = " ".join(f"{r['val_ari']:.3f}" for r in mine)
        lines.append(f"{tower:<22} {mine[0]['px']:>4} {mine[0]['params']:>9,} {mine[0]['epochs']:>6} "
                     f"{statistics.mean(aris):.3f} ± {sd:.3f} (n={len(aris)}){'':<7} {per_seed:<36} "
                     f"{statistics.mean(r['seconds'] for r in mine):>8.1f} "
                     f"{(min(fwd) if fwd else float('nan')):>10.2f}")
    return lines


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.towers")
    parser.add_argument("--quick", action="store_true", help="400 stories, 2 epochs per tower")
    parser.add_argument("--stories", type=int, default=2000)
    parser.add_argument("--towers", default=",".join(TOWERS),
                        help="comma-separated built-in vision towers, each optionally with its epochs (name:E)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs of every tower without its own :E")
    parser.add_argument("--difficulty", choices=("hard", "mild"), default="hard")
    parser.add_argument("--view-p", default="0",
                        help="comma-separated view probabilities (`clippings train --view-p`), each tower trained "
                             "once per value (default: 0, the archive's images as they are)")
    parser.add_argument("--seeds", type=int, default=1, help="number of seeds, from --seed on")
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    parser.add_argument("--json", default=None, help="also write every (tower, seed) row to this file")
    parser.add_argument("--keep", default=None, help="work in this folder (kept) instead of a temporary one")
    args = parser.parse_args(argv)

    stories = 400 if args.quick else args.stories
    towers = parse_towers(args.towers, 2 if args.quick else args.epochs)
    load_before = os.getloadavg()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seed, args.seed + args.seeds):
            rows += run_seed(seed, stories, args.difficulty, towers, args.keep or tmp,
                             [float(p) for p in args.view_p.split(",")])
            if args.json:
                with open(args.json, "w") as f:
                    json.dump(rows, f, indent=1)
    seeds = f"{args.seed}..{args.seed + args.seeds - 1}"
    print(f"\nbuilt-in archive ({args.difficulty}): {stories} stories, seeds {seeds}; "
          f"load average before {load_before}, after {os.getloadavg()}")
    print("\n".join(summary(rows)))


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
