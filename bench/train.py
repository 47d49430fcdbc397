"""Training throughput and ingestion: `python -m bench.train [--quick] [--contention] [--ingest] [--gpu-vitb32]`.

Ingestion rows (`--ingest` alone, or with the default run): each configuration runs in its own subprocess so
high-water marks do not mix.
1. Driver peak RSS pretraining on N and 4N unlabelled pairs at 224 px input (a tiny CLIP with a 224 px,
   32 px-patch vision tower; 256 px JPEGs; 1 epoch, 1 worker), with the 4N/N ratio (goal ≤ 1.2: the driver
   streams the pairs, never holds them). RSS is the driver process's, sampled every 5 ms: peak, and peak
   above the baseline after imports and the model load (Ray's own processes are not the driver).
2. Decode + preprocess throughput (read, decode, resize/crop to uint8 224 px, tokenise; no training) with 1
   and 2 CPUs for decoding (goal ≥ 1.6×): the pretraining stream's tasks, and SupCon's labelled store
   (the same JPEGs with labels).

Default: CLIP pretraining samples/s of the tiny model with 1 and 2 Ray Train CPU workers (gloo), side by
side in one run on the same built-in archive (unlabelled split), printed as a table with the 2-vs-1 ratio (train loop time only; Ray
Train start-up is reported apart); then one worker's samples/s with a competing CPU-bound process on every
core against alone, in the same run (goal ≥ 0.35; fair share on 2 cores is 0.5), with the load average.
`--gpu-vitb32`: samples/s of a ViT-B/32-sized CLIP (random init from the default `CLIPConfig`) training
with bf16 autocast on CUDA, no Ray (for a lent GPU).
"""

from __future__ import annotations

import argparse
import io
import json
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


# ---------------------------------------------------------------- ingestion: driver memory, throughput, decode

CHILD = r"""
import json, os, sys, time
archive, out, model, epochs, batch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
from clippings.model import load_model
from clippings.raylocal import init_ray
from clippings.train.pretrain import pretrain
init_ray()
load_model(model)
with open(out + ".base", "w") as f:
    f.write(str(int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")))
began = time.perf_counter()
state = pretrain(archive, out, model=model, workers=1, epochs=epochs, batch_size=batch, seed=0)
later = state["history"][1:] or state["history"]
json.dump({"wall": time.perf_counter() - began, "rate": sum(r["samples_per_s"] for r in later) / len(later),
           "load": os.getloadavg()[0]}, open(out + ".json", "w"))
"""


def _pretrain_child(code: str, archive: str, out: str, model: str, epochs: int, batch: int) -> dict:
    """Pretrain in a fresh process importing clippings from `code`; its driver's sampled RSS (MB) added."""
    from bench.link import _sampled_peak

    env = {**os.environ, "PYTHONPATH": code, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen([sys.executable, "-c", CHILD, archive, out, model, str(epochs), str(batch)], env=env,
                            cwd=code, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak, above = _sampled_peak(proc, out + ".base", timeout=3600)
    with open(out + ".json") as f:
        record = json.load(f)
    return {**record, "peak_mb": peak, "above_base_mb": above}


def model_224(folder: str) -> str:
    """A tiny CLIP whose vision tower takes 224 px input (32 px patches), saved as a model folder."""
    from transformers import CLIPModel
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    from clippings.builtins import build_tiny
    from clippings.hf import seeded
    from clippings.model import save_model

    small, processor = build_tiny(seed=0)
    config = small.config
    config.vision_config.image_size, config.vision_config.patch_size = 224, 32
    model = seeded(lambda: CLIPModel(config), 0)
    processor.image_processor = CLIPImageProcessorPil(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224})
    save_model(model, processor, folder)
    return folder


def jpeg_archive(folder: str, n: int, size: int = 256) -> str:
    """n distinct JPEG clippings of `size` px with distinct captions (unlabelled), in parts of 1,000 rows."""
    import numpy as np
    import pyarrow as pa
    from PIL import Image

    from clippings.storage import part_name, write_table_atomic

    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
    for p, start in enumerate(range(0, n, 1000)):
        images, ids = [], list(range(start, min(n, start + 1000)))
        for i in ids:
            buf = io.BytesIO()
            Image.fromarray(np.roll(base, i, axis=0)).save(buf, format="JPEG", quality=85)
            images.append(buf.getvalue())
        write_table_atomic(pa.table({"clipping_id": [f"j{i:07d}" for i in ids], "image": pa.array(images, pa.binary()),
                                     "caption": [f"clipping number {i}" for i in ids]}),
                           os.path.join(folder, part_name(p)))
    return folder


def bench_ingest(quick: bool) -> None:
    """The two ingestion rows (module docstring)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    n = 250 if quick else 2000
    with tempfile.TemporaryDirectory() as tmp:
        model = model_224(os.path.join(tmp, "model224"))
        print(f"driver peak RSS, pretraining 1 epoch at 224 px (tiny CLIP, 1 worker); load {os.getloadavg()[0]:.2f}")
        print(f"{'pairs':>6} {'peak MB':>8} {'above base MB':>14} {'4N/N peak':>10} {'load':>5}")
        first = None
        for pairs in (n, 4 * n):
            archive = jpeg_archive(os.path.join(tmp, f"jpeg{pairs}"), pairs)
            r = _pretrain_child(root, archive, os.path.join(tmp, f"rss{pairs}"), model, 1, 64)
            first = first or r["peak_mb"]
            ratio = f"{r['peak_mb'] / first:.2f}" if pairs != n else ""
            print(f"{pairs:>6} {r['peak_mb']:>8.0f} {r['above_base_mb']:>14.0f} {ratio:>10} {r['load']:>5.2f}")
        print(f"\ndecode + preprocess to uint8 224 px ({4 * n} JPEGs of 256 px), Ray CPU tasks")
        print(f"{'what':>16} {'CPUs':>5} {'pairs/s':>8} {'vs 1':>6} {'load':>5}")
        unlabelled = warm_copy(os.path.join(tmp, f"jpeg{4 * n}"))
        labelled = labelled_copy(unlabelled, os.path.join(tmp, f"labelled{4 * n}"))
        for what, archive in (("pretrain stream", unlabelled), ("labelled store", labelled)):
            rates = []
            for cpus in (1, 2):
                out = subprocess.run([sys.executable, "-m", "bench.train", "--decode-child", what, archive, model,
                                      str(cpus)], capture_output=True, text=True, check=True, cwd=root,
                                     env={**os.environ, "PYTHONPATH": root})
                rate, load = (float(v) for v in out.stdout.split()[-2:])
                rates.append(rate)
                print(f"{what:>16} {cpus:>5} {rate:>8.1f} {rate / rates[0]:>6.2f} {load:>5.2f}")


def labelled_copy(archive: str, folder: str) -> str:
    """`archive` with a `label` column (groups of 4 rows): the labelled store's input, same image bytes; and
    its warm-up copy (`warm_copy`)."""
    import pyarrow as pa

    from clippings.storage import list_parts, read_part, write_table_atomic

    for part in list_parts(archive, "archive"):
        table = read_part(part, "archive")
        labels = [f"g{int(c[1:]) // 4}" for c in table.column("clipping_id").to_pylist()]
        table = table.append_column("label", pa.array(labels, pa.string()))
        write_table_atomic(table, os.path.join(folder, os.path.basename(part)))
    return warm_copy(folder)


def warm_copy(archive: str) -> str:
    """The first 512 rows of `archive` in `archive`-warm (two decode tasks' worth): a run over it starts the
    decoders before the clock."""
    from clippings.storage import list_parts, read_part, write_table_atomic

    first = list_parts(archive, "archive")[0]
    write_table_atomic(read_part(first, "archive").slice(0, 512), os.path.join(archive + "-warm",
                                                                               os.path.basename(first)))
    return archive


def decode_child(what: str, archive: str, model: str, cpus: int) -> None:
    """Decode every pair of `archive` in Ray CPU tasks with `cpus` CPUs (0.85 CPU per task: `cpus`
    decoders fit) and print pairs/s and the load average: "pretrain stream", the stream's tasks (every batch
    read); "labelled store", SupCon's one-time store. Each is clocked over the whole call, after the same
    call on `archive`-warm has started the decoders (Ray's worker start-up is not decoding). Not from the
    first batch: the decoders' first outputs arrive together, so a clock started there counts rows decoded
    before it."""
    from ray.data import DataContext

    from clippings.image_paths import ARCHIVE_ONLY
    from clippings.preprocess import describe_model
    from clippings.raylocal import init_ray
    from clippings.train.pairs import labelled_store, pretraining_plan, rank_dataset

    init_ray(num_cpus=cpus)
    described = describe_model(model)

    def decode(folder: str) -> int:
        if what == "labelled store":
            return len(labelled_store(folder, described, ARCHIVE_ONLY, cpus=0.85))
        DataContext.get_current().execution_options.preserve_order = True
        plan = pretraining_plan(folder, lanes=1, seed=0, val_fraction=0.0, max_val=0)
        dataset = rank_dataset(plan, described, ARCHIVE_ONLY, rank=0, world=1, seed=0, epoch=1, cpus=0.85)
        return sum(len(b["clipping_id"]) for b in dataset.iter_batches(batch_size=None, batch_format="numpy"))

    decode(archive + "-warm")
    began = time.perf_counter()
    rows = decode(archive)
    print(rows / (time.perf_counter() - began), os.getloadavg()[0])


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.train", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke version")
    parser.add_argument("--gpu-vitb32", action="store_true", help="ViT-B/32 bf16 samples/s on CUDA, no Ray")
    parser.add_argument("--contention", action="store_true", help="only the busy-machine row")
    parser.add_argument("--ingest", action="store_true", help="only the ingestion rows (driver RSS, decode)")
    parser.add_argument("--decode-child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.decode_child:
        decode_child(*args.decode_child[:3], int(args.decode_child[3]))
    elif args.gpu_vitb32:
        bench_vitb32(args.quick)
    elif args.ingest:
        bench_ingest(args.quick)
    else:
        if not args.contention:
            bench_workers(args.quick)
            bench_ingest(args.quick)
        bench_contention(args.quick)


if __name__ == "__main__":
    main(sys.argv[1:])
