"""Embed pipeline throughput vs the bare model on pre-decoded tensors, same model and batch size, one run.

    python -m bench.embed [--quick] [--gpu] [--rows N] [--batch-size B]

CPU: a CLIP of ViT-B/32 size (random init from the default CLIPConfig; --quick: a 4-layer 256-wide one);
--gpu: the ViT-B/32-size CLIP in fp16 on one GPU, pairs/s reported. Prints bare forward pairs/s, pipeline
pairs/s (steady state, from the slope between a short and a full run, and end to end including actor start-up), their ratio,
and the peak RSS of this process and its Ray processes.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import threading
import time

import numpy as np


def _tree_rss(root: int) -> int:
    """Resident bytes of `root` and all its descendants (Ray's raylet, workers and actors)."""
    total, stack, page = 0, [root], os.sysconf("SC_PAGE_SIZE")
    while stack:
        pid = stack.pop()
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * page
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    stack.extend(int(c) for c in f.read().split())
        except OSError:
            continue
    return total


class PeakMemory:
    """Samples the RSS of this process tree every 0.2 s in a thread; `.peak` in bytes."""

    def __init__(self) -> None:
        self.peak, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _tree_rss(os.getpid()))
            time.sleep(0.2)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def build_model(out: str, quick: bool) -> str:
    """Save a random-init CLIP (tiny tokenizer and a 224 px image processor) to `out`; returns the folder."""
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    from clippings.builtins import byte_level_tokenizer
    from clippings.model import save_model

    tok = byte_level_tokenizer()
    text = {"vocab_size": len(tok.get_vocab()), "max_position_embeddings": 77, "bos_token_id": tok.bos_token_id,
            "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id}
    vision = {}
    if quick:
        small = {"hidden_size": 256, "intermediate_size": 1024, "num_hidden_layers": 4, "num_attention_heads": 4}
        text, vision = {**text, **small}, dict(small)
    torch.manual_seed(0)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config={**vision, "patch_size": 32, "image_size": 224}))
    processor = CLIPProcessor(image_processor=CLIPImageProcessorPil(), tokenizer=tok)
    save_model(model, processor, out)
    return out


def build_archive(folder: str, rows: int, part_rows: int) -> list[tuple[bytes, str]]:
    """A synthetic archive of JPEG clippings (~300×220 px) with ~150-character captions."""
    import pyarrow as pa
    from PIL import Image

    from clippings.storage import part_name, write_table_atomic

    rng = np.random.default_rng(0)
    pairs = []
    for i in range(rows):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (220, 300, 3), dtype=np.uint8)).save(buf, format="JPEG", quality=85)
        pairs.append((buf.getvalue(), f"clipping {i}: " + "THE PRESIDENT AT EL PASO, tbe generai said " * 3))
    for p, start in enumerate(range(0, rows, part_rows)):
        chunk = pairs[start:start + part_rows]
        write_table_atomic(pa.table({"clipping_id": [f"b{start + j:06d}" for j in range(len(chunk))],
                                     "image": pa.array([c[0] for c in chunk], pa.binary()),
                                     "caption": [c[1] for c in chunk]}), os.path.join(folder, part_name(p)))
    return pairs


def bare_forward(model_dir: str, pairs: list[tuple[bytes, str]], batch_size: int, gpu: bool) -> float:
    """Pairs/s of both towers' forward on pre-decoded, pre-tokenised batches (decode excluded)."""
    import torch

    from clippings.model import load_model

    loaded = load_model(model_dir, device="cuda" if gpu else "cpu", dtype=torch.float16 if gpu else torch.float32)
    batches = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        tokens = loaded.tokenize([c[1] for c in chunk])
        batches.append((loaded.preprocess_images([c[0] for c in chunk]), tokens["input_ids"], tokens["attention_mask"]))
    loaded.embed_images(batches[0][0])  # warm-up
    if gpu:
        torch.cuda.synchronize()
    start = time.perf_counter()
    for pixels, ids, mask in batches:
        loaded.embed_images(pixels)
        loaded.embed_tokens(ids, mask)
    if gpu:
        torch.cuda.synchronize()
    return len(pairs) / (time.perf_counter() - start)


def _run_stage(archive: str, model, batch_size: int, gpu: bool, parts: int) -> tuple[int, float]:
    from clippings.embed import embed
    from clippings.reader import plan_shards, read_shards

    plan = plan_shards(archive)
    shards = plan.shards[:parts]
    start = time.perf_counter()
    rows = 0
    ds = embed(read_shards(plan, shards), model, batch_size=batch_size, gpu=gpu, half=gpu)
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        rows += len(batch["clipping_id"])
    return rows, time.perf_counter() - start


def pipeline(archive: str, model_dir: str, batch_size: int, gpu: bool, parts: int) -> tuple[float, float]:
    """(steady-state pairs/s, end-to-end pairs/s) of the Ray Data stage.

    Steady state = the slope between a run over a quarter of the parts and a run over all of them, which
    cancels the fixed cost of starting the workers and loading the model.
    """
    from clippings.preprocess import describe_model

    model = describe_model(model_dir)
    small_rows, small_s = _run_stage(archive, model, batch_size, gpu, max(1, parts // 4))
    rows, seconds = _run_stage(archive, model, batch_size, gpu, parts)
    steady = (rows - small_rows) / (seconds - small_s) if seconds > small_s else float("nan")  # nan: too noisy
    return steady, rows / seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small model and few rows (a smoke run)")
    parser.add_argument("--gpu", action="store_true", help="ViT-B/32-size CLIP in fp16 on one GPU")
    parser.add_argument("--rows", type=int, default=None, help="clippings (default 512; --quick 256; --gpu 8192)")
    parser.add_argument("--batch-size", type=int, default=None, help="batch size (default 32; --gpu 256)")
    args = parser.parse_args(argv)
    rows = args.rows or (8192 if args.gpu else 256 if args.quick else 512)
    batch_size = args.batch_size or (256 if args.gpu else 32)
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    from clippings.raylocal import init_ray

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_model(os.path.join(tmp, "model"), args.quick and not args.gpu)
        archive = os.path.join(tmp, "archive")
        part_rows = max(batch_size, rows // 8)
        pairs = build_archive(archive, rows, part_rows)
        bare = bare_forward(model_dir, pairs, batch_size, args.gpu)
        init_ray(object_store_gb=2.0)
        with PeakMemory() as mem:
            steady, end_to_end = pipeline(archive, model_dir, batch_size, args.gpu, -(-rows // part_rows))
    kind = "ViT-B/32 fp16 GPU" if args.gpu else ("4x256 CLIP CPU" if args.quick else "ViT-B/32 CPU fp32")
    print(f"\nembed benchmark: {kind}, {rows} pairs, batch {batch_size}, {os.cpu_count()} CPUs; "
          f"load {os.getloadavg()[0]:.2f}")
    print(f"{'measure':<34}{'pairs/s':>10}{'ratio':>8}")
    print(f"{'bare model (pre-decoded tensors)':<34}{bare:>10.1f}{1.0:>8.2f}")
    print(f"{'pipeline, steady state':<34}{steady:>10.1f}{steady / bare:>8.2f}")
    print(f"{'pipeline, end to end (+start-up)':<34}{end_to_end:>10.1f}{end_to_end / bare:>8.2f}")
    print(f"peak RSS (driver + Ray processes): {mem.peak / 2**30:.2f} GiB")


if __name__ == "__main__":
    main(sys.argv[1:])
