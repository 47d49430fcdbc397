"""The report's plots as inline SVG: the ARI-vs-threshold curve and the cluster-size distribution.

Inline, so the page stays one self-contained file that opens offline; styled by the page's CSS classes
(`grid`, `line`, `best`, `chosen`, `bar` in static/report.css).
"""

from __future__ import annotations

import html
import math

import numpy as np

_W, _H, _ML, _MR, _MT, _MB = 520, 260, 52, 16, 16, 44  # size and left/right/top/bottom margins, SVG units


def _svg_open(title: str) -> list[str]:
    return [f'<svg viewBox="0 0 {_W} {_H}" role="img" aria-label="{html.escape(title)}" class="plot">']


def curve_svg(thresholds: np.ndarray, aris: np.ndarray, chosen: float | None) -> str:
    """An ARI-vs-threshold line chart; marks the best ARI and the threshold the links were cut at."""
    if len(thresholds) > 600:  # a step curve from n merges: keep evenly spaced points and the best one
        keep = np.unique(np.r_[np.linspace(0, len(thresholds) - 1, 600).astype(int), int(np.argmax(aris))])
        thresholds, aris = thresholds[keep], aris[keep]
    x0, x1 = float(thresholds.min()), float(thresholds.max())
    if chosen is not None:
        x0, x1 = min(x0, chosen), max(x1, chosen)
    if x1 <= x0:
        x1 = x0 + 1e-6
    y0, y1 = min(0.0, float(aris.min())), 1.0

    def sx(v: float) -> float:
        return _ML + (v - x0) / (x1 - x0) * (_W - _ML - _MR)

    def sy(v: float) -> float:
        return _H - _MB - (v - y0) / (y1 - y0) * (_H - _MT - _MB)

    out = _svg_open("ARI against the linking threshold")
    for i in range(5):
        yv = y0 + (y1 - y0) * i / 4
        out.append(f'<line x1="{_ML}" x2="{_W - _MR}" y1="{sy(yv):.1f}" y2="{sy(yv):.1f}" class="grid"/>'
                   f'<text x="{_ML - 6}" y="{sy(yv) + 4:.1f}" text-anchor="end">{yv:.2f}</text>')
        xv = x0 + (x1 - x0) * i / 4
        out.append(f'<text x="{sx(xv):.1f}" y="{_H - _MB + 16}" text-anchor="middle">{xv:.3f}</text>')
    points = " ".join(f"{sx(t):.1f},{sy(a):.1f}" for t, a in zip(thresholds, aris, strict=True))
    out.append(f'<polyline points="{points}" class="line"/>')
    best = int(np.argmax(aris))
    out.append(f'<circle cx="{sx(thresholds[best]):.1f}" cy="{sy(aris[best]):.1f}" r="4" class="best">'
               f'<title>best ARI {aris[best]:.3f} at threshold {thresholds[best]:.4f}</title></circle>')
    if chosen is not None:
        out.append(f'<line x1="{sx(chosen):.1f}" x2="{sx(chosen):.1f}" y1="{_MT}" y2="{_H - _MB}" class="chosen"/>'
                   f'<text x="{sx(chosen) + 4:.1f}" y="{_H - _MB - 6}">t = {chosen:.3f}</text>')
    out.append(f'<text x="{(_ML + _W - _MR) / 2}" y="{_H - 8}" text-anchor="middle">cosine distance threshold'
               f' (best ARI {aris[best]:.3f} at {thresholds[best]:.3f})</text>')
    out.append("</svg>")
    return "".join(out)


def size_bins(sizes: np.ndarray) -> list[tuple[str, int]]:
    """Cluster counts in bins 1, 2, 3–4, 5–8, ... (powers of two): (label, number of clusters)."""
    top = int(sizes.max()) if sizes.size else 1
    bins, low = [], 1
    while low <= top:
        high = 1 if low == 1 else low * 2 - 1
        count = int(((sizes >= low) & (sizes <= high)).sum())
        bins.append((str(low) if low == high else f"{low}–{high}", count))
        low = high + 1
    return bins


def sizes_svg(sizes: np.ndarray) -> str:
    """A bar chart of the number of clusters per size bin; bar height on a log scale, counts written on."""
    bins = size_bins(sizes)
    top = max(math.log10(c + 1) for _, c in bins) or 1.0
    width = (_W - _ML - _MR) / len(bins)
    out = _svg_open("number of clusters by size")
    for i, (label, count) in enumerate(bins):
        h = math.log10(count + 1) / top * (_H - _MT - _MB - 14)
        x = _ML + i * width
        out.append(f'<rect x="{x + 2:.1f}" y="{_H - _MB - h:.1f}" width="{width - 4:.1f}" height="{h:.1f}" '
                   f'class="bar"><title>{count} clusters of size {label}</title></rect>'
                   f'<text x="{x + width / 2:.1f}" y="{_H - _MB - h - 4:.1f}" text-anchor="middle">{count}</text>'
                   f'<text x="{x + width / 2:.1f}" y="{_H - _MB + 16}" text-anchor="middle">{label}</text>')
    out.append(f'<text x="{(_ML + _W - _MR) / 2}" y="{_H - 8}" text-anchor="middle">clippings per cluster'
               " (bar height: log scale)</text></svg>")
    return "".join(out)
