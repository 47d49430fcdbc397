"""Each layout's importer on generated pages, run task by task in this process (the Ray job is tested in
test_import_job.py): crops match the reference crops within CROP_TOLERANCE, captions match, ids are the same
on every run, and every selected detection ends as a row or a quarantine entry."""

from __future__ import annotations

import json
import os
import unicodedata
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from import_helpers import (
    alto_xml,
    americanstories_json,
    assert_crop_matches,
    make_page,
    navigator_page_json,
    run_local,
    save_page,
    write_json,
)

from clippings.errors import BadInput
from clippings.importers.boxes import from_pixels
from clippings.importers.job import plan_tasks
from clippings.importers.records import ImportOptions


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """Two pages with two pictures each (one a grey page), saved as lossless JPEG 2000."""
    root = tmp_path_factory.mktemp("pages")
    a = make_page("sn1/1910/seq-1.jp2", (600, 800), [(40, 50, 300, 250), (320, 400, 560, 640)],
                  ["Gen. Pershing at El Paso", "The new bridge opened"], seed=1)
    b = make_page("sn1/1910/seq-2.jp2", (500, 700), [(30, 30, 250, 200), (30, 260, 250, 430)],
                  ["Mrs. Smith of Dayton", "A fire on Main street"], seed=2, grey=True)
    for p in (a, b):
        save_page(p, str(root))
    return str(root), [a, b]


def _check_crops(rows: dict, page, prefix_caption: bool = True) -> None:
    by_caption = {r["caption"]: r for r in rows.values()}
    for pic in page.pictures:
        row = by_caption[pic.caption]
        assert row["box"] == list(pic.box)
        assert_crop_matches(row["image"], page.image, pic.box)


def test_navigator_page_json(tmp_path, pages):
    root, (a, b) = pages
    docs = tmp_path / "json"
    extras = [([0.1, 0.1, 0.2, 0.2], 0.9, 1, ["an", "illustration"]),  # class 1: left out
              ([0.5, 0.5, 0.6, 0.6], 0.2, 0, ["low"]),                 # under --min-score: left out
              ([1.2, 1.3, 1.5, 1.6], 0.9, 0, ["gone"])]                # out of the page: quarantined
    write_json(str(docs / "a.json"), navigator_page_json(a, extras))
    write_json(str(docs / "b.json"), navigator_page_json(b))
    missing = navigator_page_json(b)
    missing["filepath"] = "sn1/1910/seq-9.jp2"
    write_json(str(docs / "c.json"), missing)
    (docs / "d.json").write_text("{not json")
    options = ImportOptions(pages=root)
    rows, bad, markers, _ = run_local("navigator", str(docs), str(tmp_path / "out"), options)
    assert len(rows) == 4 and sum(m["skipped"] for m in markers) == 2
    _check_crops({k: v for k, v in rows.items() if v["page_image"].endswith("seq-1.jp2")}, a)
    _check_crops({k: v for k, v in rows.items() if v["page_image"].endswith("seq-2.jp2")}, b)
    assert {r["date"] for r in rows.values()} == {"1910-01-01"} and {r["score"] for r in rows.values()} == {0.93}
    assert {r["page"] for r in rows.values()} == {"sn00000001/1910-01-01/ed-1/seq-1"}
    reasons = sorted(bad.values())
    assert len(reasons) == 4
    assert any("outside the page" in r for r in reasons)
    assert sum("page image not found" in r for r in reasons) == 2
    assert any(k.startswith("document:") and "not valid JSON" in r for k, r in bad.items())
    again, bad_again, _, _ = run_local("navigator", str(docs), str(tmp_path / "again"), options)
    assert sorted(again) == sorted(rows) and sorted(bad_again) == sorted(bad)


def test_navigator_prepackaged_rows_json_csv_parquet_give_the_same_clippings(tmp_path, pages):
    root, (a, b) = pages
    rows = []
    for page in (a, b):
        for pic in page.pictures:
            rows.append({"box": list(from_pixels(pic.box, "xyxy", "fraction", page.image.size)), "score": 0.8,
                         "ocr": pic.caption.split(), "filepath": page.name, "pub_date": "1910-01-01",
                         "lccn": "sn1", "name": "The Test Herald", "url": "https://example.org/x"})
    rows.append({**rows[0], "score": 0.1})  # kept in the release, under the default --min-score
    write_json(str(tmp_path / "1910_photos.json"), rows)
    import csv

    with open(tmp_path / "1910_photos.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({**r, "box": str(r["box"]), "ocr": str(r["ocr"])} for r in rows)
    decimal_box = pa.array([[Decimal(f"{v:.15f}") for v in r["box"]] for r in rows], pa.list_(pa.decimal128(18, 15)))
    table = pa.Table.from_pylist([{k: v for k, v in r.items() if k != "box"} for r in rows])
    pq.write_table(table.append_column("box", decimal_box), tmp_path / "1910_photos.parquet")
    found = {}
    for ext in ("json", "csv", "parquet"):
        got, bad, _, skipped = run_local("navigator", str(tmp_path / f"1910_photos.{ext}"), str(tmp_path / ext),
                                         ImportOptions(pages=root))
        assert not bad and skipped == 1 and len(got) == 4
        assert {r["source"] for r in got.values()} == {"The Test Herald"}
        _check_crops({k: v for k, v in got.items() if v["page_image"].endswith("seq-1.jp2")}, a)
        found[ext] = sorted(got)
    assert found["json"] == found["csv"] == found["parquet"]


def test_american_stories_pairs_captions_and_scales_to_the_decoded_page(tmp_path, pages):
    root, (a, b) = pages
    write_json(str(tmp_path / "docs" / "a.json"), americanstories_json(a, width_error=0.01))
    write_json(str(tmp_path / "docs" / "b.json"), americanstories_json(b, width_error=-0.02))
    lonely = americanstories_json(a)
    lonely["bboxes"] = [x for x in lonely["bboxes"] if x["class"] != "image_caption"]
    lonely["scan"]["jp2_url"] = "https://example.org/data/batches/x/sn1/1910/seq-1.jp2?copy=2"
    write_json(str(tmp_path / "docs" / "c.json"), lonely)
    rows, bad, markers, _ = run_local("americanstories", str(tmp_path / "docs"), str(tmp_path / "out"),
                                      ImportOptions(pages=root))
    assert not bad and len(rows) == 6
    paired = [r for r in rows.values() if r["caption"]]
    assert len(paired) == 4 and all(0.5 < r["pair_confidence"] <= 1 for r in paired)
    _check_crops({k: v for k, v in rows.items() if v["caption"] and v["page_image"].endswith("seq-1.jp2")}, a)
    _check_crops({k: v for k, v in rows.items() if v["caption"] and v["page_image"].endswith("seq-2.jp2")}, b)
    unpaired = [r for r in rows.values() if not r["caption"]]
    assert len(unpaired) == 2 and all(r["pair_confidence"] is None for r in unpaired)
    assert {r["source"] for r in rows.values()} == {"The Daily Test"}
    assert sum(m["skipped"] for m in markers) == 3  # one headline decoy per scan, not a detection


@pytest.mark.parametrize("unit,version,bom,composed", [("pixel", 2, True, False), ("mm10", 3, False, True),
                                                       ("inch1200", 4, True, False)])
def test_alto_pictures_captions_hyphenation_units(tmp_path, unit, version, bom, composed):
    decomposed = unicodedata.normalize("NFD", "Café Zürich")
    page = make_page("p1.jpg", (640, 880), [(40, 40, 600, 300), (40, 400, 320, 700)],
                     ["Gen. Pershing reviewing troops", f"The {decomposed} opened"], seed=5)
    folder = tmp_path / "alto"
    save_page(page, str(folder), fmt="PNG")  # named p1.jpg on purpose: found by stem, decoded by content
    (folder / "p1.xml").write_bytes(alto_xml(page, unit=unit, version=version, bom=bom, composed=composed))
    rows, bad, _, _ = run_local("alto", str(folder), str(tmp_path / "out"))
    assert not bad and len(rows) == 2
    captions = sorted(r["caption"] for r in rows.values())
    assert captions == sorted(["Gen. Pershing reviewing troops", unicodedata.normalize("NFC", "The Café Zürich opened")])
    for pic in page.pictures:
        row = next(r for r in rows.values() if r["caption"] == unicodedata.normalize("NFC", pic.caption))
        assert_crop_matches(row["image"], page.image, pic.box)


def test_alto_boxes_from_a_navigator_file(tmp_path):
    page = make_page("p2.png", (500, 600), [(50, 60, 450, 300)], ["A parade downtown"], seed=6)
    save_page(page, str(tmp_path / "alto"), fmt="PNG")
    xml = alto_xml(page).replace(b"<Illustration", b"<Ignored")
    (tmp_path / "alto" / "p2.xml").write_bytes(xml)
    boxes = write_json(str(tmp_path / "boxes.json"), navigator_page_json(page))
    rows, bad, _, _ = run_local("alto", str(tmp_path / "alto"), str(tmp_path / "out"), ImportOptions(boxes=boxes))
    assert not bad and [r["caption"] for r in rows.values()] == ["A parade downtown"]
    assert_crop_matches(next(iter(rows.values()))["image"], page.image, page.pictures[0].box)


@pytest.mark.parametrize("fmt,units", [("xywh", "pixels"), ("xyxy", "percent"), ("xyxy", "fraction")])
def test_manifest_pages_and_boxes(tmp_path, pages, fmt, units):
    root, (a, b) = pages
    lines = []
    for page in (a, b):
        for pic in page.pictures:
            box = from_pixels(pic.box, fmt, units, page.image.size)
            lines.append({"page_image": page.name, "box": list(box), "caption": pic.caption, "source": "Herald",
                          "date": "1911-02-03"})
    lines.append({"page_image": a.name, "box": "not a box", "caption": "x"})
    lines.append({"page_image": a.name, "box": [0, 0, 0, 0], "caption": "empty"})
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(json.dumps(x) for x in lines))
    options = ImportOptions(pages=root, box_format=fmt, box_units=units)
    rows, bad, _, _ = run_local("manifest", str(manifest), str(tmp_path / "out"), options)
    assert len(rows) == 4 and len(bad) == 2
    assert any("not 4 numbers" in r for r in bad.values()) and any("empty box" in r for r in bad.values())
    _check_crops({k: v for k, v in rows.items() if v["page_image"].endswith("seq-1.jp2")}, a)
    assert {r["source"] for r in rows.values()} == {"Herald"}


def test_manifest_ready_crops_and_the_image_policy(tmp_path, pages):
    root, (a, _) = pages
    crop = a.image.crop(a.pictures[0].box)
    os.makedirs(tmp_path / "crops")
    crop.save(tmp_path / "crops" / "c1.png")
    outside = tmp_path.parent / f"{tmp_path.name}-outside.png"
    crop.save(outside)
    with open(tmp_path / "m.csv", "w") as f:
        f.write(f"image,caption,clipping_id\ncrops/c1.png,Gen. Pershing,given-1\n{outside},elsewhere,\n"
                "crops/none.png,missing,\n")
    rows, bad, _, _ = run_local("manifest", str(tmp_path / "m.csv"), str(tmp_path / "out"))
    assert list(rows) == ["given-1"]
    assert_crop_matches(rows["given-1"]["image"], a.image, a.pictures[0].box)
    assert sorted(bad.values())[0].startswith("image file not found")
    assert "--allowed-image-prefix" in sorted(bad.values())[1]
    (tmp_path / "bad.csv").write_text("caption\nx\n")
    with pytest.raises(BadInput, match=r"bad.csv: row 0 has neither 'image' nor 'page_image'"):
        plan_tasks("manifest", str(tmp_path / "bad.csv"), ImportOptions())


def test_page_cap_replaces_pillows_guard_and_paths_out_of_the_pages_folder_are_refused(tmp_path, pages,
                                                                                       monkeypatch):
    import io

    from PIL import Image

    from clippings.importers.crops import decode_page

    root, (a, _) = pages
    with open(os.path.join(root, a.name), "rb") as f:
        data = f.read()
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow's guard would refuse this page...
    assert decode_page(data).size == a.image.size  # ...ours allows it, under PAGE_PIXEL_CAP
    assert Image.MAX_IMAGE_PIXELS == 1000  # and the global is left as it was
    with pytest.raises(ValueError, match="over the cap of 1,000 pixels"):
        decode_page(data, cap=1000)
    with pytest.raises(ValueError, match="undecodable page image"):
        decode_page(io.BytesIO(b"not an image").getvalue())
    doc = navigator_page_json(a)
    doc["filepath"] = "../" + os.path.basename(root) + "/" + a.name  # resolves outside --pages' folder
    write_json(str(tmp_path / "json" / "a.json"), doc)
    inner = os.path.join(root, "sn1")
    rows, bad, _, _ = run_local("navigator", str(tmp_path / "json"), str(tmp_path / "out"), ImportOptions(pages=inner))
    assert not rows and len(bad) == 2 and all("outside the archive folder" in r for r in bad.values())
