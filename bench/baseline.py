"""Throughput and memory of the Jaccard linker at 10k, 100k and 1M captions: `python -m bench.baseline [--quick]`.

Captions come from the synthetic archive's caption generator (no images). Each size runs in its own
subprocess so peak memory (ru_maxrss, which includes the captions themselves) is per size. The ratio
column is the per-caption link CPU time relative to the smallest size (CPU time, so that a busy machine
does not blur the scaling): near 1.0 means linear scaling. The
candidate-pair cap (`max_df_used`) is reported: it shrinks as the archive grows so prefix-index pairs stay <= 30 per
caption.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (2_000, 10_000)
N, OVERLAP = 3, 0.3  # a mid-grid choice (tuning on 5k synthetic captions picks n=1..3, overlap 0.2-0.45)


def one(size: int, seed: int = 0) -> dict:
    """Generate `size` captions and link them; returns timings, counts and peak memory."""
    from clippings.baselines import jaccard_link
    from clippings.evaluate import ari
    from clippings.synth import generate_captions

    t0 = time.perf_counter()
    captions, labels = generate_captions(int(size / 3.0) + 10, seed=seed, workers=2)
    captions, labels = captions[:size], labels[:size]
    gen_s = time.perf_counter() - t0
    t0, c0 = time.perf_counter(), time.process_time()
    result = jaccard_link(captions, N, OVERLAP)
    link_s, link_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    return {"size": len(captions), "generate_s": gen_s, "link_s": link_s, "link_cpu_s": link_cpu_s,
            "captions_per_s": len(captions) / link_s, "cpu_us_per_caption": link_cpu_s / len(captions) * 1e6,
            "candidate_pairs": result.candidate_pairs, "linked_pairs": result.linked_pairs,
            "skipped_ngrams": result.skipped_ngrams, "max_df_used": result.max_df_used,
            "ari": ari(labels, result.labels),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.baseline", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small smoke sizes (2k, 10k)")
    ap.add_argument("--sizes", type=int, nargs="*", default=None, help="caption counts (default: 10k 100k 1M)")
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one is not None:
        print(json.dumps(one(args.one)))
        return 0
    sizes = args.sizes or (QUICK_SIZES if args.quick else SIZES)
    rows = []
    print(f"Jaccard linker (n={N}, overlap={OVERLAP}), prefix-filter candidates; one subprocess per size")
    print(f"{'captions':>10} {'gen s':>8} {'link s':>8} {'captions/s':>11} {'cpu us/capt':>11} {'ratio':>6} "
          f"{'cand. pairs':>12} {'linked':>10} {'cap':>5} {'skipped':>8} {'ARI':>6} {'peak MB':>8}")
    for size in sizes:
        done = subprocess.run([sys.executable, "-m", "bench.baseline", "--one", str(size)], capture_output=True,
                              text=True, check=True)
        r = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(r)
        ratio = r["cpu_us_per_caption"] / rows[0]["cpu_us_per_caption"]
        print(f"{r['size']:>10} {r['generate_s']:>8.1f} {r['link_s']:>8.2f} {r['captions_per_s']:>11.0f} "
              f"{r['cpu_us_per_caption']:>11.1f} {ratio:>6.2f} {r['candidate_pairs']:>12} {r['linked_pairs']:>10} "
              f"{r['max_df_used']:>5} {r['skipped_ngrams']:>8} {r['ari']:>6.3f} {r['peak_rss_mb']:>8.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
