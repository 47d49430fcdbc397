"""The report's page: one self-contained HTML file of the largest linked groups, their header and plots.

Every text that comes from the archive or the links folder is HTML-escaped here; the style and the caption
search (static/report.css, static/report.js) are inlined, so the page needs no network and no other file
but its thumbnails.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from importlib import resources


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


def _asset(name: str) -> str:
    """A file of static/ (the page's style and script), inlined so the page opens offline as one file."""
    return resources.files("clippings.report").joinpath("static", name).read_text(encoding="utf-8")


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
        f"<title>clippings: linked reprints</title><style>\n{_asset('report.css')}</style></head><body>"
        f"<header><h1>Linked reprints</h1>{facts}</header><main>{notes}{cuts}"
        f'<div class="plots">{curve_fig}<figure>{sizes}<figcaption>Cluster sizes</figcaption></figure></div>'
        '<input id="search" type="search" placeholder="Search captions…" aria-label="Search captions">'
        f'<div id="count" class="meta"></div>{"".join(_group_html(i + 1, g) for i, g in enumerate(groups))}'
        f"</main><script>\n{_asset('report.js')}</script></body></html>"
    )
