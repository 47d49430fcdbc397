"""Building the report: read a links folder and its archive, cut thumbnails, write the page.

`build_report` writes `out/index.html` (`clippings.report.page`) and `out/images/*.jpg` (thumbnails cut from
the archive's image bytes). For each group it finds why it was linked: its weakest MST edge (the largest
distance single linkage had to accept to join the group) and, given embeddings, the image and text cosine
similarity of that edge's two clippings.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from PIL import Image, UnidentifiedImageError

from clippings.archive import iter_archive_parts
from clippings.embeddings import read_embeddings
from clippings.errors import BadInput
from clippings.image_paths import ARCHIVE_ONLY, ImagePolicy, resolve_image_path
from clippings.link.store import LINKS_JSON, require_complete
from clippings.progress import Progress
from clippings.report.page import Group, Member, cut_table_html, header_facts, render_html
from clippings.report.svg import curve_svg, sizes_svg
from clippings.storage import exists, join, list_parts, read_bytes, read_json, read_part, write_bytes_atomic

IMAGES_DIR = "images"


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
