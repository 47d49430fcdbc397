"""Training throughput: `python -m bench.train [--quick] [--contention] [--gpu-vitb32]`.

Default: CLIP pretraining samples/s of the tiny model with 1 and 2 Ray Train CPU workers (gloo), side by
side in one run on the same built-in archive (unlabelled split), printed as a table with the 2-vs-1 ratio (train loop time only; Ray
Train start-up is reported apart); then one worker's samples/s with a competing CPU-bound process on every
core against alone, in the same run (goal ≥ 0.35; fair share on 2 cores is 0.5), with the load average.
`--gpu-vitb32`: samples/s of a ViT-B/32-sized CLIP (random init from the default `CLIPConfig`) training
with bf16 autocast on CUDA, no Ray (for a lent GPU).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time


def bench_workers(quick: bool) -> None:
    from clippings.raylocal import init_ray
    from clippings.synth import generate
    from clippings.train.pretrain import pretrain

    init_ray()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        archive = generate(os.path.join(tmp, "synth"), stories=150 if quick else 600, seed=0)["unlabelled"]
        for workers in (1, 2):
            began = time.perf_counter()
            state = pretrain(archive, os.path.join(tmp, f"model{workers}"), workers=workers,
                             epochs=2 if quick else 3, batch_size=64, seed=0)
            wall = time.perf_counter() - began
            rate = _rate(state)
            train_s = sum(r["train_seconds"] for r in state["history"])
            rows.append((workers, rate, train_s, wall))
    base = rows[0][1]
    print(f"{'workers':>7} {'samples/s':>10} {'vs 1':>6} {'train s':>8} {'wall s':>7}")
    for workers, rate, train_s, wall in rows:
        print(f"{workers:>7} {rate:>10.1f} {rate / base:>6.2f} {train_s:>8.1f} {wall:>7.1f}")


def _rate(state: dict) -> float:
    later = state["history"][1:] or state["history"]  # epoch 1 includes warm-up
    return sum(r["samples_per_s"] for r in later) / len(later)


def bench_contention(quick: bool) -> None:
    """Samples/s of one pretraining worker alone, then beside one busy-looping process per core.

    Thread pools sized to the CPUs Ray grants keep this near the fair share; pools as large as the machine
    made each fork-join step wait for descheduled threads (about 0.01-0.04 of the rate alone).
    """
    from clippings.raylocal import init_ray
    from clippings.synth import generate
    from clippings.train.pretrain import pretrain

    init_ray()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        archive = generate(os.path.join(tmp, "synth"), stories=150 if quick else 600, seed=0)["unlabelled"]
        for setting in ("alone", "busy"):
            before = os.getloadavg()[0]
            spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                        for _ in range(os.cpu_count() or 1)] if setting == "busy" else []
            try:
                state = pretrain(archive, os.path.join(tmp, f"model-{setting}"), workers=1,
                                 epochs=2 if quick else 3, batch_size=64, seed=0)
                during = os.getloadavg()[0]
            finally:
                for spinner in spinners:
                    spinner.kill()
                    spinner.wait()
            rows.append((setting, _rate(state), before, during))
    alone = rows[0][1]
    print(f"{'beside':>22} {'samples/s':>10} {'vs alone':>9} {'load before':>12} {'load during':>12}")
    for setting, rate, before, during in rows:
        label = "nothing" if setting == "alone" else f"{os.cpu_count()} busy processes"
        print(f"{label:>22} {rate:>10.1f} {rate / alone:>9.2f} {before:>12.2f} {during:>12.2f}")


def bench_vitb32(quick: bool) -> None:
    import torch
    from transformers import CLIPConfig, CLIPModel

    from clippings.train.pretrain import clip_loss

    if not torch.cuda.is_available():
        print("--gpu-vitb32 needs CUDA; none found")
        return
    torch.manual_seed(0)
    model = CLIPModel(CLIPConfig()).cuda().train()  # defaults: ViT-B/32 vision, 12-layer 512-d text
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, betas=(0.9, 0.98), eps=1e-6, weight_decay=1e-3)
    batch, steps, warm = 256, (5 if quick else 20), 3
    pixels = torch.randn(batch, 3, 224, 224, device="cuda")
    ids = torch.randint(0, model.config.text_config.vocab_size - 2, (batch, 32), device="cuda")
    ids[:, -1] = model.config.text_config.eos_token_id
    mask = torch.ones_like(ids)
    for step in range(warm + steps):
        if step == warm:
            torch.cuda.synchronize()
            began = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            img = torch.nn.functional.normalize(model.get_image_features(pixel_values=pixels).pooler_output.float(), dim=-1)
            txt = torch.nn.functional.normalize(model.get_text_features(
                input_ids=ids, attention_mask=mask).pooler_output.float(), dim=-1)
            loss = clip_loss(img, txt, model.logit_scale.exp())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    torch.cuda.synchronize()
    rate = batch * steps / (time.perf_counter() - began)
    print(f"{'model':>10} {'batch':>6} {'dtype':>6} {'samples/s':>10} {'GiB peak':>9}")
    print(f"{'ViT-B/32':>10} {batch:>6} {'bf16':>6} {rate:>10.1f} {torch.cuda.max_memory_allocated() / 2**30:>9.2f}"
          f"   ({torch.cuda.get_device_name()})")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.train", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke version")
    parser.add_argument("--gpu-vitb32", action="store_true", help="ViT-B/32 bf16 samples/s on CUDA, no Ray")
    parser.add_argument("--contention", action="store_true", help="only the busy-machine row")
    args = parser.parse_args(argv)
    if args.gpu_vitb32:
        bench_vitb32(args.quick)
    else:
        if not args.contention:
            bench_workers(args.quick)
        bench_contention(args.quick)


if __name__ == "__main__":
    main(sys.argv[1:])
