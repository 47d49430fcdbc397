"""From page scans to linked reprints through the real CLI: `import navigator` → `embed` → `link` → `report`
with the offline `tiny` model. Two pages reprint the same two photos (same pixels, other places on the page,
same captions); a third page has photos of its own."""

from __future__ import annotations

import os

import pyarrow.parquet as pq
import pytest
from import_helpers import make_page, navigator_page_json, save_page, write_json

from clippings import cli
from clippings.archive import read_archive


@pytest.mark.slow  # ~30 s: three stages each start Ray Data work
def test_import_embed_link_report(ray_local, tmp_path):
    pages, docs = str(tmp_path / "pages"), str(tmp_path / "json")
    layouts = {"a": [(20, 20, 300, 220), (20, 260, 220, 460)], "b": [(90, 240, 370, 440), (150, 20, 350, 220)],
               "c": [(20, 20, 300, 220), (20, 260, 220, 460)]}
    captions = ["Gen. Pershing at El Paso", "The new bridge opened"]
    for name, boxes in layouts.items():
        page = make_page(f"{name}.jp2", (400, 520), boxes, captions if name != "c" else ["Other", "Photos"],
                         seed=3 if name != "c" else 4)
        save_page(page, pages)
        write_json(os.path.join(docs, f"{name}.json"), navigator_page_json(page))
    archive, emb, links, report = (str(tmp_path / n) for n in ("archive", "emb", "links", "report"))
    assert cli.main(["import", "navigator", "--input", docs, "--pages", pages, "--out", archive]) == 0
    assert cli.main(["embed", "--archive", archive, "--model", "tiny", "--out", emb]) == 0
    assert cli.main(["link", "--embeddings", emb, "--out", links, "--threshold", "0.01", "--k", "4"]) == 0
    assert cli.main(["report", "--links", links, "--archive", archive, "--out", report]) == 0
    rows = read_archive(archive).to_pylist()
    clusters = dict(zip(*pq.read_table(os.path.join(links, "clusters.parquet"))
                        .select(["clipping_id", "cluster_id"]).to_pydict().values(), strict=True))
    assert len(rows) == len(clusters) == 6
    by_caption: dict[str, set[str]] = {}
    for r in rows:
        by_caption.setdefault(r["caption"], set()).add(clusters[r["clipping_id"]])
    assert by_caption[captions[0]] != by_caption[captions[1]]
    assert all(len(c) == 1 for c in by_caption.values())  # each reprinted photo: one cluster of its two copies
    assert os.path.exists(os.path.join(report, "index.html"))
