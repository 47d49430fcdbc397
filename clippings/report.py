"""A static, self-contained HTML report of a links folder that a historian can browse offline.

`build_report` writes `out/index.html` and `out/images/*.jpg` (thumbnails cut from the archive's image bytes):
the largest linked groups as galleries of reprints with caption, source and date; a caption search box
(inline JS, no network; `index.html#q=word` or `?q=word` applies a search on load); the ARI-vs-threshold
curve and the cluster-size distribution as inline SVG; and for each group why it was linked: its weakest
MST edge (the largest distance single linkage had to accept to join the group) and, given embeddings,
the image and text cosine similarity of that edge's two clippings.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from PIL import Image, UnidentifiedImageError

from clippings.archive import (
    ARCHIVE_ONLY,
    ImagePolicy,
    exists,
    iter_archive_parts,
    join,
    list_parts,
    read_bytes,
    read_json,
    read_part,
    resolve_image_path,
    write_bytes_atomic,
)
from clippings.errors import BadInput
from clippings.link.store import LINKS_JSON, require_complete
from clippings.progress import Progress

IMAGES_DIR = "images"


@dataclass
class Member:
    """One clipping shown in a gallery."""

    clipping_id: str
    caption: str
    source: str
    date: str
    page: str
    thumb: str | None = None  # path relative to index.html; None when the image could not be decoded
    problem: str = ""


@dataclass
class Group:
    """One linked group (cluster) shown as a gallery; `members` holds at most `max_per_group` clippings."""

    cluster_id: str
    size: int
    members: list[Member] = field(default_factory=list)
    weakest: tuple[str, str, float] | None = None  # (src, dst, distance) of the max-distance MST edge inside
    image_cos: float | None = None
    text_cos: float | None = None
    radius_deg: float | None = None  # angular radius from links.json diagnostics, when recorded


@dataclass
class ReportSummary:
    """What `build_report` wrote: the page, how many groups and thumbnails, and undecodable images."""

    index: str
    groups: int
    thumbnails: int
    unreadable_images: int
    clusters: int
    clippings: int


# ---------------------------------------------------------------- reading the links folder


def _read_links_table(links: str, name: str, needed: tuple[str, ...]) -> pa.Table:
    path = join(links, name)
    if not exists(path):
        raise BadInput(f"links {links}: {name} not found; give the --out folder of 'clippings link'")
    table = read_part(path, "links")
    missing = [c for c in needed if c not in table.column_names]
    if missing:
        raise BadInput(
            f"links {path}: column(s) {', '.join(missing)} missing (found: {', '.join(table.column_names)}); "
            "this is not a links file: re-run 'clippings link'"
        )
    return table.select(list(needed))


def read_curve(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Read an ARI curve CSV with columns `threshold` and `ari` (others ignored), sorted by threshold.

    Raises BadInput naming the file and row for a missing file, missing columns or a non-numeric value.
    """
    try:
        text = read_bytes(path).decode("utf-8")
    except FileNotFoundError as e:
        raise BadInput(f"curve {path}: file not found; give the curve.csv written by 'clippings tune'") from e
    reader = csv.DictReader(io.StringIO(text))
    columns = reader.fieldnames or []
    if "threshold" not in columns or "ari" not in columns:
        raise BadInput(
            f"curve {path}: needs columns 'threshold' and 'ari' (found: {', '.join(columns) or 'none'}); "
            "give the curve.csv written by 'clippings tune'"
        )
    thresholds, aris = [], []
    for row_number, row in enumerate(reader, start=2):
        try:
            thresholds.append(float(row["threshold"]))
            aris.append(float(row["ari"]))
        except (TypeError, ValueError) as e:
            raise BadInput(
                f"curve {path}: line {row_number} has a non-numeric threshold or ari "
                f"({row.get('threshold')!r}, {row.get('ari')!r}); fix or re-create the file"
            ) from e
    if not thresholds:
        raise BadInput(f"curve {path}: no rows; give the curve.csv written by 'clippings tune'")
    order = np.argsort(thresholds, kind="stable")
    return np.asarray(thresholds)[order], np.asarray(aris)[order]


def weakest_edges(clusters: pa.Table, mst: pa.Table, wanted: list[str]) -> dict[str, tuple[str, str, float]]:
    """For each cluster id in `wanted`, the max-distance MST edge with both ends in that cluster.

    Single linkage joined the group through the MST, so this edge is the weakest link the threshold had
    to accept. Cost: O(E log E) time for E MST edges, a few arrays of E integers in memory.
    """
    if mst.num_rows == 0 or not wanted:
        return {}
    codes_arr = pc.dictionary_encode(clusters.column("cluster_id").combine_chunks())
    names = codes_arr.dictionary.to_pylist()
    codes = codes_arr.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    ids = clusters.column("clipping_id").combine_chunks()

    def cluster_of(column: str) -> np.ndarray:
        row = pc.fill_null(pc.index_in(mst.column(column), value_set=ids), -1).to_numpy(zero_copy_only=False)
        return np.where(row >= 0, codes[np.maximum(row, 0)], -1)

    csrc, cdst = cluster_of("src"), cluster_of("dst")
    wanted_set = set(wanted)
    wanted_codes = [i for i, name in enumerate(names) if name in wanted_set]
    inside = (csrc == cdst) & (csrc >= 0) & np.isin(csrc, wanted_codes)
    rows = np.flatnonzero(inside)
    if rows.size == 0:
        return {}
    dist = mst.column("distance").to_numpy(zero_copy_only=False)[rows]
    order = np.lexsort((-dist, csrc[rows]))  # by cluster, largest distance first
    sorted_codes = csrc[rows][order]
    _, first = np.unique(sorted_codes, return_index=True)
    src, dst = mst.column("src"), mst.column("dst")
    result = {}
    for k in first:
        r = int(rows[order[k]])
        result[names[int(sorted_codes[k])]] = (src[r].as_py(), dst[r].as_py(), float(dist[order[k]]))
    return result


# ---------------------------------------------------------------- thumbnails


def thumbnail_jpeg(data: bytes, size: int) -> bytes:
    """Decode encoded image bytes and return a JPEG thumbnail fitting in size×size; ValueError if undecodable."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.draft("RGB", (size * 2, size * 2))  # JPEG: decode at reduced scale, much faster for scans
            im = im.convert("RGB")
            im.thumbnail((size, size))
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=82, optimize=True)
            return buf.getvalue()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise ValueError(f"undecodable image ({type(e).__name__})") from e


def _thumb_name(clipping_id: str) -> str:
    # ids may hold any character; a hash makes a safe, stable file name
    return hashlib.sha1(clipping_id.encode()).hexdigest()[:20] + ".jpg"


def _text(value) -> str:
    return "" if value is None else str(value)


# ---------------------------------------------------------------- plots (inline SVG)

_W, _H, _ML, _MR, _MT, _MB = 520, 260, 52, 16, 16, 44


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


# ---------------------------------------------------------------- the page

_CSS = """
body{font:15px/1.45 Georgia,serif;margin:0;background:#f7f3ea;color:#222}
header{background:#2b2a27;color:#f7f3ea;padding:14px 24px}
header h1{margin:0;font-size:22px} header p{margin:4px 0 0;font-size:13px;color:#cfc8b8}
main{padding:16px 24px} .plots{display:flex;flex-wrap:wrap;gap:16px}
.plots figure{margin:0;background:#fff;border:1px solid #ddd5c4;padding:8px;flex:1 1 420px;max-width:560px}
.plot{width:100%;height:auto;font:11px sans-serif} .plot text{fill:#444}
.grid{stroke:#eee} .line{fill:none;stroke:#8a3b12;stroke-width:2} .best{fill:#8a3b12}
.chosen{stroke:#1d5d8a;stroke-dasharray:4 3} .bar{fill:#b08a4f}
#search{font-size:16px;padding:6px 10px;width:min(480px,90%);margin:16px 0 4px}
.group{background:#fff;border:1px solid #ddd5c4;margin:14px 0;padding:10px 14px}
.group h2{font-size:17px;margin:0 0 2px} .why{font:12px sans-serif;color:#555;margin:0 0 8px}
.gallery{display:flex;flex-wrap:wrap;gap:10px}
figure.clip{margin:0;width:150px;font:12px sans-serif}
figure.clip img{max-width:140px;max-height:140px;border:1px solid #ccc;background:#eee;display:block}
.caption{max-height:6.5em;overflow:hidden;margin:3px 0} .meta{color:#777}
.nocap{color:#999;font-style:italic}
.broken{width:128px;height:90px;border:1px dashed #b55;color:#b55;display:flex;align-items:center;
justify-content:center;text-align:center}
.cuts{border-collapse:collapse;background:#fff;font:13px sans-serif;margin:0 0 16px}
.cuts td,.cuts th{border:1px solid #ddd5c4;padding:3px 8px;text-align:right} .cuts .picked{font-weight:bold}
.warn{background:#fbe7d4;border:1px solid #d9a66f;padding:6px 10px;font:13px sans-serif} .more{font:12px sans-serif;color:#555;margin-top:6px}
"""

_JS = """
(function(){
  var groups=[].slice.call(document.querySelectorAll('section.group'));
  var box=document.getElementById('search'), count=document.getElementById('count');
  function apply(q){
    q=(q||'').trim().toLowerCase(); var shown=0;
    groups.forEach(function(g){var hit=!q||g.getAttribute('data-text').indexOf(q)>=0;
      g.hidden=!hit; if(hit){shown++;}});
    count.textContent=shown+' of '+groups.length+' groups shown';
    document.body.setAttribute('data-query',q); document.body.setAttribute('data-visible-groups',shown);
  }
  function fromUrl(){
    var m=/[#?&]q=([^&]*)/.exec(location.hash)||/[?&]q=([^&]*)/.exec(location.search);
    return m?decodeURIComponent(m[1].replace(/\\+/g,' ')):'';
  }
  box.addEventListener('input',function(){
    apply(box.value); history.replaceState(null,'',box.value?'#q='+encodeURIComponent(box.value):'#');
  });
  box.value=fromUrl(); apply(box.value);
  window.addEventListener('load',function(){
    var imgs=[].slice.call(document.querySelectorAll('figure.clip img')), ok=0;
    imgs.forEach(function(i){if(i.complete&&i.naturalWidth>0){ok++;}});
    document.body.setAttribute('data-images-loaded',ok);
    document.body.setAttribute('data-images-broken',imgs.length-ok);
  });
})();
"""


NO_CAPTION = "(no caption)"
"""Shown for a null or empty caption: such a clipping is linked by its image alone
(docs/architecture.md#data-contract)."""


def _member_html(m: Member) -> str:
    caption = html.escape(m.caption) if m.caption.strip() else f'<span class="nocap">{NO_CAPTION}</span>'
    if m.thumb:
        picture = f'<img src="{html.escape(m.thumb)}" alt="{html.escape(m.caption[:120])}">'
    else:
        picture = f'<div class="broken">{html.escape(m.problem or "no image")}</div>'
    meta = " · ".join(html.escape(x) for x in (m.source, m.date, f"p. {m.page}" if m.page else "") if x)
    return (f'<figure class="clip" data-id="{html.escape(m.clipping_id)}">{picture}<figcaption>'
            f'<div class="caption">{caption}</div><div class="meta">{meta}</div>'
            f'<div class="meta">{html.escape(m.clipping_id)}</div></figcaption></figure>')


def _why_html(g: Group) -> str:
    if g.weakest is None:
        return '<p class="why">No MST edge inside this group was found in mst.parquet.</p>'
    src, dst, d = g.weakest
    text = (f"Weakest link: {html.escape(src)} ↔ {html.escape(dst)} at cosine distance {d:.4f}"
            " (single linkage joined the group through edges no longer than this)")
    if g.image_cos is not None:
        text += f"; image similarity {g.image_cos:.3f}, text similarity {g.text_cos:.3f}"
    if g.radius_deg is not None:
        text += f"; angular radius {g.radius_deg:.1f}°"
    return f'<p class="why">{text}.</p>'


def _group_html(rank: int, g: Group) -> str:
    searchable = html.escape(" ".join(m.caption for m in g.members).lower())
    more = g.size - len(g.members)
    tail = f'<p class="more">… and {more} more reprints not shown</p>' if more > 0 else ""
    return (f'<section class="group" id="g{rank}" data-cluster="{html.escape(g.cluster_id)}" '
            f'data-text="{searchable}"><h2>Group {rank} · {g.size} clippings</h2>{_why_html(g)}'
            f'<div class="gallery">{"".join(_member_html(m) for m in g.members)}</div>{tail}</section>')


def _figure(value: float) -> str:
    """A distance or weight as a person reads it: 4 decimals, no float noise."""
    return f"{value:.4f}"


def header_facts(info: dict, clippings: int, clusters: int, linked: int, shown: int,
                 made_by: str | None = None) -> dict[str, str]:
    """The report header in words a historian can act on: what made the links, what was linked and the rule.

    info: links.json (threshold t, image weight, exact_up_to; or the Jaccard baseline's n and overlap).
    The rule reads "linked when cosine distance ≤ 0.2196; exact up to 0.2204": single linkage joins two
    clippings when a chain of pairs each that close connects them, and the result is exact (no pair missed
    by the neighbour search) for any threshold up to exact_up_to.
    """
    facts = {}
    model = info.get("model_name")
    if made_by or model:
        facts["Made by"] = made_by or f"model {model}"
    facts["Clippings"] = (f"{clippings:,} in {clusters:,} groups; {linked:,} groups hold reprints "
                          f"(the {shown:,} largest are shown)")
    if info.get("method") == "jaccard":
        facts["Linked when"] = (f"their captions' word {info.get('n')}-grams overlap by a Jaccard similarity "
                                f"≥ {_figure(float(info['overlap']))}, directly or through a chain of such pairs")
    elif "threshold" in info:
        what = "16 px grey thumbnails" if info.get("method") == "pixels" else "image-and-caption embeddings"
        rule = f"the cosine distance of their {what} is ≤ {_figure(float(info['threshold']))}"
        exact = info.get("exact_up_to")
        if exact is not None:
            rule += ("; exact at every threshold" if float(exact) >= 2.0 else
                     f"; exact up to {_figure(float(exact))} (a re-cut at any threshold up to that is exact)")
        facts["Linked when"] = rule + ", directly or through a chain of such pairs"
    auto = info.get("auto")
    if auto and auto.get("threshold") == info.get("threshold"):
        weights = ", ".join(f"{g['im_wt']:g}" for g in auto.get("grid", []))
        facts["Threshold chosen"] = (
            f"without labels: {auto['method']} of the distribution of {auto['edges']:,} MST edge lengths, "
            f"t = {_figure(float(auto['threshold']))}, w = {float(auto['im_wt']):g} (tried {weights}); valley "
            f"depth {float(auto['depth']):.3f} ≥ {float(auto['min_depth']):g}")
    if "im_wt" in info and info.get("method") != "pixels":
        facts["Image weight"] = f"{float(info['im_wt']):.2f} (0 = caption only, 1 = image only)"
    if "index" in info:
        neighbours = f", k = {info['k']} neighbours per clipping" if "k" in info else ""
        facts["Neighbour search"] = f"{info['index']} index{neighbours}"
    return facts


def cut_table_html(info: dict) -> str:
    """The table over t that `link --threshold auto` records (links.json "auto"), so a reader sees what cuts
    near the chosen one would do; "" when the threshold was not chosen that way (or was re-cut since)."""
    auto = info.get("auto")
    if not auto or auto.get("threshold") != info.get("threshold"):
        return ""
    table = auto["table"]
    head = ("<tr><th>threshold</th><th>clusters</th><th>largest</th><th>singletons</th>"
            f"<th>MST edges within ±{_figure(float(table['delta']))}</th></tr>")
    rows = []
    for r in table["rows"]:
        mark = ' class="picked"' if r["threshold"] == auto["threshold"] else ""
        exact = "" if r["exact"] else " (not exact)"
        rows.append(f"<tr{mark}><td>{_figure(r['threshold'])}{exact}</td><td>{r['clusters']:,}</td>"
                    f"<td>{r['largest']:,}</td><td>{r['singletons']:,}</td><td>{r['edges_within_delta']:,}</td></tr>")
    return f'<table class="cuts"><caption>Cuts near the chosen threshold</caption>{head}{"".join(rows)}</table>'


def render_html(groups: list[Group], header: dict, curve: str | None, sizes: str, warnings: list[str],
                cuts: str = "") -> str:
    """The whole page as one string; every archive- or links-derived text is HTML-escaped (`cuts` is built
    from numbers only, see cut_table_html)."""
    facts = "".join(f"<p>{html.escape(k)}: {html.escape(str(v))}</p>" for k, v in header.items())
    notes = "".join(f'<p class="warn">{html.escape(w)}</p>' for w in warnings)
    curve_fig = (f"<figure>{curve}<figcaption>ARI on the labelled set against the threshold</figcaption></figure>"
                 if curve else "")
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>clippings: linked reprints</title><style>{_CSS}</style></head><body>"
        f"<header><h1>Linked reprints</h1>{facts}</header><main>{notes}{cuts}"
        f'<div class="plots">{curve_fig}<figure>{sizes}<figcaption>Cluster sizes</figcaption></figure></div>'
        '<input id="search" type="search" placeholder="Search captions…" aria-label="Search captions">'
        f'<div id="count" class="meta"></div>{"".join(_group_html(i + 1, g) for i, g in enumerate(groups))}'
        f"</main><script>{_JS}</script></body></html>"
    )


# ---------------------------------------------------------------- putting it together


def build_report(
    links: str,
    archive: str,
    out: str,
    curve: str | None = None,
    embeddings: str | None = None,
    top: int = 50,
    max_per_group: int = 24,
    thumb_size: int = 128,
    images: ImagePolicy = ARCHIVE_ONLY,
    made_by: str | None = None,
    progress: Progress | None = None,
) -> ReportSummary:
    """Write `out/index.html` and `out/images/` for the `top` largest multi-clipping groups of `links`.

    Parameters: `links` a folder written by `clippings link` (clusters.parquet, mst.parquet, links.json);
    `archive` the archive dataset the links were built from (images and captions); `curve` an optional CSV
    with columns threshold,ari (from `clippings tune`); `embeddings` an optional embeddings dataset for the
    image/text similarity of each group's weakest edge; `top` how many groups to show (largest first, ties
    by cluster id); `max_per_group` clippings shown per group; `thumb_size` the thumbnail's longest side;
    `images` which `image_path` locations outside the archive folder may be read (a refused one is shown as
    a placeholder naming the rule). A null or empty caption is shown as "(no caption)". `made_by` names the
    method and model that made the links (e.g. a replicate row), shown first in the header. `progress` is
    advanced once per shown clipping (its thumbnail is the report's main cost).
    Raises BadInput for missing or malformed inputs, an incomplete links folder (a link that did not finish),
    or when the links name clippings the archive lacks.
    Cost: one pass over the archive (one part in memory at a time), O(E log E) over the MST, one JPEG
    encode per shown clipping; the clusters table and MST in memory.
    """
    require_complete(links)
    clusters = _read_links_table(links, "clusters.parquet", ("clipping_id", "cluster_id"))
    mst = _read_links_table(links, "mst.parquet", ("src", "dst", "distance"))
    info = read_json(join(links, LINKS_JSON))
    counts = pc.value_counts(clusters.column("cluster_id").combine_chunks())
    names = counts.field("values").to_pylist()
    sizes = counts.field("counts").to_numpy().astype(np.int64)
    order = sorted((i for i in range(len(names)) if sizes[i] > 1), key=lambda i: (-sizes[i], names[i]))[:top]
    groups = {names[i]: Group(names[i], int(sizes[i])) for i in order}

    shown = _select_members(clusters, list(groups), max_per_group)
    all_ids = clusters.column("clipping_id").combine_chunks()
    if progress is not None:
        progress.set(0, total=len(shown))
    members, found = _read_members(archive, out, shown, all_ids, thumb_size, images, progress)
    if found < len(all_ids):
        _raise_missing_ids(links, archive, all_ids)
    for mid, cid in shown.items():
        groups[cid].members.append(members[mid])

    for cid, edge in weakest_edges(clusters, mst, list(groups)).items():
        groups[cid].weakest = edge
    if embeddings is not None:
        _add_similarities(list(groups.values()), embeddings)

    curve_svg_text = None
    chosen = info.get("threshold")
    if curve is not None:
        thresholds, aris = read_curve(curve)
        curve_svg_text = curve_svg(thresholds, aris, float(chosen) if chosen is not None else None)
    header = header_facts(info, len(all_ids), len(names), int((sizes > 1).sum()), len(groups), made_by)
    diagnostics = info.get("diagnostics", {})
    for entry in diagnostics.get("largest", []):
        if entry.get("cluster_id") in groups and "radius_deg" in entry:
            groups[entry["cluster_id"]].radius_deg = float(entry["radius_deg"])
    page = render_html(list(groups.values()), header, curve_svg_text, sizes_svg(sizes),
                       [str(w) for w in diagnostics.get("chaining_warnings", [])], cut_table_html(info))
    index = join(out, "index.html")
    write_bytes_atomic(index, page.encode("utf-8"))
    thumbs = sum(1 for m in members.values() if m.thumb)
    return ReportSummary(index, len(groups), thumbs, len(members) - thumbs, len(names), len(all_ids))


def _select_members(clusters: pa.Table, wanted: list[str], max_per_group: int) -> dict[str, str]:
    """clipping id -> cluster id for the first `max_per_group` members (by id) of each wanted cluster."""
    shown: dict[str, str] = {}
    taken: Counter[str] = Counter()
    rows = clusters.filter(pc.is_in(clusters.column("cluster_id"), value_set=pa.array(wanted, pa.string())))
    for cid, mid in sorted(zip(rows.column("cluster_id").to_pylist(), rows.column("clipping_id").to_pylist(),
                               strict=True)):
        if taken[cid] < max_per_group:
            shown[mid] = cid
            taken[cid] += 1
    return shown


def _read_members(archive: str, out: str, shown: dict[str, str], all_ids: pa.Array, thumb_size: int,
                  images: ImagePolicy, progress: Progress | None = None) -> tuple[dict[str, Member], int]:
    """One pass over the archive: the shown clippings' text and thumbnails (written to `out/images/`), and
    how many of `all_ids` the archive holds. An undecodable, missing or refused image becomes a
    placeholder."""
    wanted = pa.array(list(shown), pa.string())
    members: dict[str, Member] = {}
    found = 0
    for _, table in iter_archive_parts(archive):
        found += pc.sum(pc.is_in(table.column("clipping_id"), value_set=all_ids)).as_py() or 0
        for r in table.filter(pc.is_in(table.column("clipping_id"), value_set=wanted)).to_pylist():
            m = Member(r["clipping_id"], _text(r["caption"]), _text(r["source"]), _text(r["date"]),
                       _text(r["page"]))
            data = r["image"]
            try:
                if data is None:
                    data = read_bytes(resolve_image_path(archive, r["image_path"], images))
                name = _thumb_name(m.clipping_id)
                write_bytes_atomic(join(out, IMAGES_DIR, name), thumbnail_jpeg(data, thumb_size))
                m.thumb = f"{IMAGES_DIR}/{name}"
            except ValueError as e:  # before reading: the path was refused; after: the bytes did not decode
                m.problem = f"image unreadable: {e}" if data is not None else f"image refused: {e}"
            except FileNotFoundError:
                m.problem = f"image file not found: {r['image_path']}"
            members[m.clipping_id] = m
            if progress is not None:
                progress.update(1)
    return members, found


def _raise_missing_ids(links: str, archive: str, ids: pa.Array) -> None:
    """Name how many (and one) clipping ids of the links the archive lacks; reads only the id column."""
    missing = ids
    for part in list_parts(archive, "archive"):
        part_ids = read_part(part, "archive", columns=["clipping_id"]).column("clipping_id")
        missing = missing.filter(pc.invert(pc.is_in(missing, value_set=part_ids.combine_chunks())))
    raise BadInput(
        f"links {links}: {len(missing)} clipping ids of clusters.parquet are not in archive {archive} "
        f"(e.g. {missing[0].as_py()!r}); give the archive the links were built from"
    )


def _add_similarities(groups: list[Group], embeddings: str) -> None:
    """Set image/text cosine similarity of each group's weakest edge from an embeddings dataset."""
    from clippings.embeddings import read_embeddings

    emb = read_embeddings(embeddings)
    row = {cid: i for i, cid in enumerate(emb.ids.tolist())}
    for g in groups:
        if g.weakest is None:
            continue
        a, b = g.weakest[0], g.weakest[1]
        for cid in (a, b):
            if cid not in row:
                raise BadInput(
                    f"embeddings {embeddings}: clipping_id {cid!r} of the links is missing; "
                    "give the embeddings the links were built from"
                )
        g.image_cos = float(np.dot(emb.image[row[a]], emb.image[row[b]]))
        g.text_cos = float(np.dot(emb.text[row[a]], emb.text[row[b]]))

