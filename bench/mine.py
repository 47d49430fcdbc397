"""`clippings mine` beside `clippings link` on the same embeddings, at scale: the issue's goal is mining
1M rows within 2× the time of linking them.

    python -m bench.mine [--quick] [--scale 100000,1000000]

Data: bench.link's model (rows in Zipf(1.8) groups of ≤ 400 around random centres, d = 256, members
~0.1 apart, groups ~1 apart) for the image tower; the text tower has the same groups around other random
centres; captions are cheap synthetic text with shared character n-grams inside a group (a group's
caption of random syllable words, each member's with 3 % of its letters changed, as OCR noise does).
Embeddings given: neither side embeds. Timed in one process, one after the other, on the same rows in
memory: link = clippings.link.pipeline.link_embeddings at t = 0.3, w = 0.5 with the ivf index (what link
uses at scale: bench.link); mine = clippings.mine.mine_embeddings with its default rules (index auto: flat
up to clippings.link.auto.FLAT_MAX rows, ivf cells above). The machine's load average is printed before
and after each: on a shared machine every time is inflated alike, unevenly. The mined pairs' precision and
recall against the generated groups are printed beside (clippings.mine.agreement).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

THRESHOLD = 0.3
TYPO_RATE = 0.03


def make_towers(n: int, dim: int = 256, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image, text, group): bench.link.make_data's rows for the image tower, and a text tower of the same
    groups around other random centres (unit float32 rows)."""
    from bench.link import make_data

    image, group = make_data(n, dim, seed=seed)
    rng = np.random.default_rng([seed, 2])
    centres = rng.normal(size=(int(group.max()) + 1, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    text = np.empty_like(image)
    scale = np.float32(0.33 / np.sqrt(dim))
    for start in range(0, n, 65536):
        rows = group[start : start + 65536]
        text[start : start + len(rows)] = centres[rows] + scale * rng.standard_normal((len(rows), dim), np.float32)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    return image, text, group


def make_captions(group: np.ndarray, seed: int = 1, words: int = 12) -> list[str]:
    """One caption per row: its group's `words` random syllable words, TYPO_RATE of the letters replaced at
    random per row (members share most character n-grams; different groups share few)."""
    rng = np.random.default_rng([seed, 3])
    syllables = np.array([c + v for c in "bcdfghklmnprstvz" for v in "aeiou"])
    base = ["".join(w) for w in syllables[rng.integers(0, len(syllables), (int(group.max()) + 1) * words * 3)]
            .reshape(-1, 3)]
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    captions = []
    for g in group.tolist():
        chars = list(" ".join(base[g * words : (g + 1) * words]))
        hits = np.flatnonzero(rng.random(len(chars)) < TYPO_RATE)
        for i, c in zip(hits.tolist(), letters[rng.integers(0, 26, len(hits))].tolist(), strict=True):
            chars[i] = c
        captions.append("".join(chars))
    return captions


def _load() -> float:
    return os.getloadavg()[0]


def run(n: int) -> dict:
    """Link and mine n generated rows; their times, loads and the mining's record."""
    from clippings.embeddings import Embeddings
    from clippings.link.pipeline import link_embeddings
    from clippings.mine import agreement, mine_embeddings

    image, text, group = make_towers(n)
    captions = make_captions(group)
    ids = np.array([f"r{i:08d}" for i in range(n)], dtype=object)
    emb = Embeddings(ids, image, text, "bench", "bench")
    row: dict = {"n": n, "load_start": _load()}
    t0 = time.perf_counter()
    linked = link_embeddings(emb, THRESHOLD, 0.5, index="ivf")
    row.update(link_s=time.perf_counter() - t0, load_link=_load(), link_recall=linked.info["recall"])
    del linked
    t0 = time.perf_counter()
    mined = mine_embeddings(ids, image, text, captions)
    row.update(mine_s=time.perf_counter() - t0, load_mine=_load(), search=mined.search, pairs=mined.pairs,
               cuts={k: round(c.strict, 4) for k, c in mined.cuts.items()},
               agreement=agreement(group.astype(str).tolist(), mined),
               groups=int(len(np.unique(mined.label[mined.kind == "group"].astype(str)))))
    return row


def _print(rows: list[dict]) -> None:
    print(f"\nmine vs link on the same embeddings (d=256; link: ivf at t={THRESHOLD}, w=0.5; mine: default rules); "
          f"{os.cpu_count()} CPUs, load average now {_load():.1f}")
    print(f"{'n':>10} {'link s':>8} {'mine s':>8} {'ratio':>6} {'load start/link/mine':>21} {'mine index':>10} "
          f"{'groups':>8} {'precision':>9} {'recall':>7}")
    for r in rows:
        a = r["agreement"]
        print(f"{r['n']:>10,} {r['link_s']:>8.1f} {r['mine_s']:>8.1f} {r['mine_s'] / r['link_s']:>6.2f} "
              f"{r['load_start']:>7.1f}/{r['load_link']:.1f}/{r['load_mine']:.1f} {r['search']['index']:>10} "
              f"{r['groups']:>8,} {a['pair_precision']:>9.4f} {a['pair_recall']:>7.4f}")
        print(f"   link recall {r['link_recall']}; strict cuts {r['cuts']}; pairs {r['pairs']}; search {r['search']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 rows (mine's exact flat searches)")
    parser.add_argument("--scale", default="100000", help="row counts, comma-separated (default: 100000)")
    args = parser.parse_args(argv)
    sizes = [20_000] if args.quick else [int(v) for v in args.scale.split(",") if v]
    rows = []
    for n in sizes:
        rows.append(run(n))
        _print(rows[-1:])
    if len(rows) > 1:
        _print(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
