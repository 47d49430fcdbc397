"""ALTO XML (METS/ALTO: Chronicling America, Europeana, most national libraries) beside its page images, into
page groups of pictures paired with caption blocks.

Read from any ALTO version (namespaces are ignored, a byte-order mark is fine): `Description/MeasurementUnit`
(pixel, mm10 or inch1200), `Page@WIDTH/HEIGHT` (the frame every box is scaled from, to the image as decoded),
pictures from `Illustration` elements and `ComposedBlock`s whose TYPE names a picture (or, with `--boxes`,
from a Navigator per-page or COCO JSON file instead), and `TextBlock/TextLine/String@CONTENT`. Words split
by a line-end hyphen are joined: a `String` with SUBS_TYPE=HypPart1 contributes its SUBS_CONTENT (the whole
word) and the HypPart2 string after it is skipped; without SUBS_CONTENT the two parts are concatenated;
`HYP` elements are dropped. Text is NFC. A caption is a text block of at most MAX_CAPTION_LINES lines, paired
with a picture by `pairing.pair_captions`.
"""

from __future__ import annotations

import posixpath
import xml.etree.ElementTree as ET

from clippings.importers.boxes import BoxSpec, alto_frame, corners
from clippings.importers.documents import (
    IMAGE_EXTENSIONS,
    folder_of,
    list_documents,
    number,
    read_json_document,
)
from clippings.importers.pairing import pair_captions
from clippings.importers.records import Detection, ImportOptions, PageGroup, clipping_id
from clippings.importers.text import clean
from clippings.storage import read_bytes

PREFIX = "alto"
EXTENSIONS = (".xml", ".alto")
PICTURE_TYPES = ("illustration", "photograph", "photo", "picture", "image", "figure", "graphic")
"""ComposedBlock@TYPE values (lower case, prefix match) taken as pictures."""
MAX_CAPTION_LINES = 8
"""Text blocks with more lines are article text, not captions, and are never paired with a picture."""


def documents(path: str) -> list[str]:
    return list_documents(path, EXTENSIONS, "alto")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _box(el: ET.Element) -> tuple[float, float, float, float] | None:
    try:
        return tuple(float(el.attrib[k]) for k in ("HPOS", "VPOS", "WIDTH", "HEIGHT"))  # type: ignore[return-value]
    except (KeyError, ValueError):
        return None


def block_text(block: ET.Element) -> tuple[str, int]:
    """(the block's text with hyphenation undone, NFC; its number of lines)."""
    words: list[str] = []
    lines = 0
    pending = None  # the first part of a hyphenated word without SUBS_CONTENT
    skip_next_part2 = False
    for line in block.iter():
        if _local(line.tag) != "TextLine":
            continue
        lines += 1
        for el in line:
            if _local(el.tag) != "String":
                continue
            content = el.attrib.get("CONTENT", "")
            subs = el.attrib.get("SUBS_TYPE", "")
            if subs == "HypPart1":
                if el.attrib.get("SUBS_CONTENT"):
                    words.append(el.attrib["SUBS_CONTENT"])
                    skip_next_part2 = True
                else:
                    pending = content
                continue
            if subs == "HypPart2":
                if skip_next_part2:
                    skip_next_part2 = False
                    continue
                if pending is not None:
                    words.append(pending + content)
                    pending = None
                    continue
            if pending is not None:
                words.append(pending)
                pending = None
            skip_next_part2 = False
            words.append(content)
    if pending is not None:
        words.append(pending)
    return clean(" ".join(words)), lines


def parse_xml(data: bytes, doc: str) -> ET.Element:
    """The root element; ValueError (a quarantine reason) when not well-formed."""
    try:
        return ET.fromstring(data.removeprefix(b"\xef\xbb\xbf"))
    except ET.ParseError as e:
        raise ValueError(f"document {doc} is not well-formed XML ({e})") from e


def page_names(doc: str) -> list[str]:
    """Page image file names tried for an ALTO file: its stem with each image extension."""
    stem = posixpath.splitext(posixpath.basename(doc))[0]
    return [stem + ext for ext in IMAGE_EXTENSIONS]


def _pictures_from_alto(page: ET.Element) -> list[tuple[float, float, float, float]]:
    found = []
    for el in page.iter():
        name = _local(el.tag)
        kind = el.attrib.get("TYPE", "").lower()
        if name == "Illustration" or (name == "ComposedBlock" and kind.startswith(PICTURE_TYPES)):
            box = _box(el)
            if box is not None:
                found.append(box)
    return found


def _pictures_from_file(boxes: str, doc: str) -> list[BoxSpec]:
    """Picture boxes of this page from a Navigator per-page JSON (fractions, matched by filepath stem) or a
    COCO JSON (`images[].file_name` stem, `annotations[].bbox` xywh pixels of that image's width × height)."""
    stem = posixpath.splitext(posixpath.basename(doc))[0]
    data = read_json_document(boxes)
    pages = data if isinstance(data, list) else [data]
    if isinstance(data, dict) and "annotations" in data:
        images = {im["id"]: im for im in data.get("images", [])
                  if posixpath.splitext(posixpath.basename(im.get("file_name", "")))[0] == stem}
        return [BoxSpec(tuple(a["bbox"]), "xywh", "pixels",
                        (float(images[a["image_id"]]["width"]), float(images[a["image_id"]]["height"])))
                for a in data["annotations"] if a.get("image_id") in images]
    found = []
    for p in pages:
        if isinstance(p, dict) and posixpath.splitext(posixpath.basename(str(p.get("filepath", ""))))[0] == stem:
            for box, cls in zip(p.get("boxes", []), p.get("pred_classes") or [0] * len(p.get("boxes", [])),
                                strict=True):
                if int(cls) == 0:
                    found.append(BoxSpec(tuple(float(v) for v in box), "xyxy", "fraction"))
    return found


def parse_page(doc: str, options: ImportOptions) -> tuple[list[PageGroup], int]:
    """An ALTO file: ([its page group], 0: every picture found is a detection, text blocks are not counted)."""
    root = parse_xml(read_bytes(doc), doc)
    unit = None
    for el in root.iter():
        if _local(el.tag) == "MeasurementUnit":
            unit = (el.text or "").strip()
            break
    page = next((el for el in root.iter() if _local(el.tag) == "Page"), None)
    if page is None:
        raise ValueError(f"document {doc} has no Page element: not an ALTO file")
    frame = alto_frame(unit, number(page.attrib.get("WIDTH")), number(page.attrib.get("HEIGHT")))
    blocks, texts = [], []
    for el in page.iter():
        if _local(el.tag) == "TextBlock" and (box := _box(el)) is not None:
            text, lines = block_text(el)
            if text and lines <= MAX_CAPTION_LINES:
                blocks.append(corners(box, "xywh"))
                texts.append(text)
    if options.boxes:
        specs = _pictures_from_file(options.boxes, doc)
        # boxes of another frame are paired in page fractions, a frame both sides share
        pictures = [_fractions(s, frame) for s in specs]
        captions = [_fractions(BoxSpec(b, "xyxy", "pixels"), frame) for b in blocks]
    else:
        specs = [BoxSpec(b, "xywh", "pixels", frame) for b in _pictures_from_alto(page)]
        pictures = [corners(s.values, "xywh") for s in specs]
        captions = blocks
    pairs = pair_captions(pictures, captions)
    first, *rest = page_names(doc)
    detections = [Detection(clipping_id(PREFIX, first, spec), spec, texts[j] if j is not None else "", None, conf)
                  for spec, (j, conf) in zip(specs, pairs, strict=True)]
    return [PageGroup(first, options.pages or folder_of(doc), detections, None, None, first,
                      alternatives=rest)], 0


def _fractions(spec: BoxSpec, frame: tuple[float, float] | None) -> tuple[float, float, float, float]:
    """A box as fractions of its page, for pairing boxes from different frames; pixel boxes without a page
    size are left as they are (both sides then share the image's pixels)."""
    x0, y0, x1, y1 = corners(spec.values, spec.fmt)
    if spec.units == "fraction":
        return x0, y0, x1, y1
    size = spec.frame or frame
    if size is None:
        return x0, y0, x1, y1
    return x0 / size[0], y0 / size[1], x1 / size[0], y1 / size[1]
