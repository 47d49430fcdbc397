"""Device check (not run yet: no GPU was lent to issue 15): the within-t graph of 10M × 256 on one GPU.

    python -m bench.gpu_link [--n 10000000] [--dim 256] [--block 8192]
    python -m bench.gpu_link --cells [--n 10000000]   # clippings' own ivf search, float16 products on the GPU

`--cells` runs the product path of `clippings link --index ivf` (clippings.link.ivf.ivf_cells_graph with
device "cuda": FAISS k-means and probes on the CPU, each list's float16 product and float32 re-check on the
GPU) and prints its timings and recall; it needs faiss-cpu and numpy there (carry the wheel).

Needs only torch with CUDA and numpy (the device machine has no FAISS or Ray; faiss-gpu wheels need CUDA 12
and exceed what can be carried there). Same data model as bench.link's scale rows (Zipf(1.8) groups ≤ 400,
t = 0.3), generated on the GPU. Every pair within t is found by brute force, block by block: fp16 matmul
(tensor cores), candidates above 1 − t − margin (the fp16 rounding bound of a unit-vector dot product,
2⁻⁹ here, generous) re-checked in float32, folded per block into a count (the MST merge stays on the CPU
in clippings; here only the GPU part is timed). Prints the time, pairs, and GPU memory peak.
The goal of the issue: ≤ 5 minutes for 10M.
"""

from __future__ import annotations

import argparse
import time


def make_groups(n: int, dim: int, seed: int = 1, noise: float = 0.33):
    import numpy as np
    import torch

    rng = np.random.default_rng(seed)
    sizes = np.minimum(rng.zipf(1.8, size=n), 400)
    sizes = sizes[: int(np.searchsorted(np.cumsum(sizes), n)) + 1]
    sizes[-1] -= int(sizes.sum()) - n
    group = torch.from_numpy(np.repeat(np.arange(len(sizes)), sizes)).cuda()
    gen = torch.Generator(device="cuda").manual_seed(seed)
    centres = torch.randn(len(sizes), dim, device="cuda", generator=gen)
    centres /= centres.norm(dim=1, keepdim=True)
    x = torch.empty(n, dim, device="cuda", dtype=torch.float32)
    for s in range(0, n, 1 << 20):
        rows = group[s : s + (1 << 20)]
        v = centres[rows] + noise / dim**0.5 * torch.randn(len(rows), dim, device="cuda", generator=gen)
        x[s : s + len(rows)] = v / v.norm(dim=1, keepdim=True)
    return x


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--block", type=int, default=8192)  # 8192 × 2²¹ fp16 sims: 32 GiB
    parser.add_argument("--threshold", type=float, default=0.3)
    parser.add_argument("--cells", action="store_true", help="clippings' ivf search, products on the GPU")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    x = make_groups(args.n, args.dim)
    if args.cells:
        return _cells(x.cpu().numpy(), args.threshold)
    torch.cuda.synchronize()
    print(f"data {args.n:,} × {args.dim} on {torch.cuda.get_device_name()} in {time.perf_counter() - t0:.1f} s")
    xh = x.half()
    margin = 2.0**-9
    min_sim = 1.0 - args.threshold - margin
    pairs = candidates = 0
    t0 = time.perf_counter()
    cols = 1 << 21
    for r in range(0, args.n, args.block):
        q, qh = x[r : r + args.block], xh[r : r + args.block]
        for c in range(r, args.n, cols):  # upper triangle only: each pair once
            sims = qh @ xh[c : c + cols].T
            i, j = torch.nonzero(sims > min_sim, as_tuple=True)
            j = j + c
            keep = j > i + r
            i, j = i[keep], j[keep]
            candidates += len(i)
            exact = (q[i] * x[j]).sum(dim=1)  # float32 re-check
            pairs += int((1.0 - exact <= args.threshold).sum())
    torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    print(f"within-t pairs {pairs:,} ({candidates:,} candidates) in {seconds:.1f} s; "
          f"GPU memory peak {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
    return 0


def _cells(x, threshold: float) -> int:
    """clippings' ivf search with the products on the GPU: timings, recall, pairs."""
    import torch

    from clippings.link.ivf import ivf_cells_graph

    t0 = time.perf_counter()
    graph = ivf_cells_graph(x, threshold, None, None, 1000, 0.995, 0, max(1 << 20, 8 * len(x)), device="cuda")
    print(f"ivf cells on {torch.cuda.get_device_name()}: {time.perf_counter() - t0:.1f} s, recall "
          f"{graph.recall:.4f}, {len(graph.src):,} forest edges, search {graph.stats['search']}, timings "
          f"{graph.stats['timings']}; GPU memory peak {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
