"""A static, self-contained HTML report of a links folder that a historian can browse offline.

The largest linked groups as galleries of reprints with caption, source and date; a caption search box
(inline JS, no network; `index.html#q=word` or `?q=word` applies a search on load); the ARI-vs-threshold
curve and the cluster-size distribution as inline SVG; and for each group why it was linked. Rooms:
`build.py` (reading the links folder and archive, thumbnails, `build_report`), `page.py` (the HTML),
`svg.py` (the plots), `static/` (the page's CSS and JS, inlined into it).
"""

from clippings.report.build import ReportSummary, build_report, read_curve, thumbnail_jpeg, weakest_edges
from clippings.report.page import NO_CAPTION, cut_table_html, header_facts, render_html
from clippings.report.svg import curve_svg, size_bins, sizes_svg

__all__ = [
    "NO_CAPTION",
    "ReportSummary",
    "build_report",
    "curve_svg",
    "cut_table_html",
    "header_facts",
    "read_curve",
    "render_html",
    "size_bins",
    "sizes_svg",
    "thumbnail_jpeg",
    "weakest_edges",
]
