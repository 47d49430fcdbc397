"""`clippings import FORMAT`: page scans plus layout output (Newspaper Navigator, American Stories, ALTO, a
manifest) into an archive of crops and captions, on Ray Data, resumable. The module is `import_` because
`import` is a Python keyword; the subcommand is `import`."""

from __future__ import annotations

import argparse
import os

from clippings.errors import BadInput
from clippings.params import NAVIGATOR_CLASSES, NAVIGATOR_MIN_SCORE, Interval, OneOf, validate_params

HELP = "Import page scans + layout (navigator, americanstories, alto, manifest) into an archive of crops."

FORMAT_HELP = {
    "navigator": "Newspaper Navigator per-page JSON, or its prepackaged yearly JSON/CSV/Parquet rows: photos "
                 "with the OCR words inside their box as caption",
    "americanstories": "American Stories scan JSON: photographs paired with image_caption boxes by geometry",
    "alto": "a folder of ALTO XML beside its page images: Illustration/ComposedBlock pictures (or --boxes) "
            "paired with caption text blocks",
    "manifest": "CSV, JSON lines or Parquet rows: 'image' (a ready crop) or 'page_image' + 'box', and 'caption'",
}

CONSTRAINTS = {
    "min_score": Interval(float, 0.0, 1.0),
    "concurrency": Interval(int, 1, None),
    "crop_long_side": Interval(int, 16, None),
    "max_requests_per_minute": Interval(float, 0.0, None, open_low=True),
    "box_format": OneOf(("xyxy", "xywh")),
    "box_units": OneOf(("pixels", "fraction", "percent")),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from clippings.commands.embed import add_image_arguments
    from clippings.importers.crops import CROP_LONG_SIDE, PAGE_PIXEL_CAP

    formats = parser.add_subparsers(dest="format", required=True, metavar="FORMAT")
    for name, text in FORMAT_HELP.items():
        p = formats.add_parser(name, help=text, description=text)
        p.add_argument("--input", required=True, help="a document or a folder of them (local or s3://)")
        p.add_argument("--out", required=True, help="output archive folder (local or s3://)")
        p.add_argument("--pages", default=None,
                       help="folder (or s3:// prefix) of the page images, named as the documents name them "
                            "(default: the documents' folder)")
        p.add_argument("--crop-long-side", type=int, default=CROP_LONG_SIDE,
                       help=f"crops are stored as JPEG with the long side at most this many pixels (default: "
                            f"{CROP_LONG_SIDE}); pages over {PAGE_PIXEL_CAP:,} pixels are quarantined")
        p.add_argument("--concurrency", type=int, default=None,
                       help="import actors, one CPU each (default: one per CPU)")
        add_image_arguments(p)
        if name == "navigator":
            p.add_argument("--classes", default="0",
                           help="classes kept, numbers or names, comma-separated (default: 0 = Photograph; "
                                f"{', '.join(f'{i} {c}' for i, c in enumerate(NAVIGATOR_CLASSES))})")
            p.add_argument("--min-score", type=float, default=NAVIGATOR_MIN_SCORE,
                           help=f"lowest detection score kept (default: {NAVIGATOR_MIN_SCORE}: the released "
                                "files keep scores down to 0.05, mostly non-photos below 0.5; lower it for recall)")
            p.add_argument("--iiif", default=None, metavar="BASE",
                           help="fetch each photo as a IIIF Image API region from BASE (the page's identifier: its "
                                "filepath, percent-encoded) instead of reading pages from --pages")
            p.add_argument("--iiif-cache", default=None, metavar="DIR",
                           help="local folder caching IIIF responses: a re-run requests nothing it already has")
            p.add_argument("--max-requests-per-minute", type=float, default=None,
                           help="IIIF requests a minute for the whole run, shared by its tasks (default: no limit; "
                                "be polite to public servers)")
        if name == "manifest":
            p.add_argument("--box-format", default="xyxy", help="'box' column as xyxy corners or xywh (default: xyxy)")
            p.add_argument("--box-units", default="pixels",
                           help="'box' in pixels of the page image, fraction (0-1) or percent (default: pixels)")
        if name == "alto":
            p.add_argument("--boxes", default=None,
                           help="a Navigator per-page or COCO JSON file of picture boxes, used instead of the "
                                "ALTO's Illustration/ComposedBlock pictures")


def parse_classes(text: str) -> tuple[int, ...]:
    """Navigator classes from '0,1' or 'Photograph,Map' (names case-insensitive)."""
    names = {c.lower(): i for i, c in enumerate(NAVIGATOR_CLASSES)}
    found = []
    for item in (t.strip() for t in text.split(",")):
        if item.isdigit() and int(item) < len(NAVIGATOR_CLASSES):
            found.append(int(item))
        elif item.lower() in names:
            found.append(names[item.lower()])
        else:
            raise BadInput("The 'classes' parameter of import navigator must be class numbers "
                           f"0-{len(NAVIGATOR_CLASSES) - 1} or names ({', '.join(NAVIGATOR_CLASSES)}). "
                           f"Got {item!r} instead.")
    return tuple(found)


def run(args: argparse.Namespace) -> int:
    validate_params("import", vars(args), CONSTRAINTS)
    from clippings.commands.embed import image_policy
    from clippings.importers.job import import_archive
    from clippings.importers.records import ImportOptions
    from clippings.logs import finish
    from clippings.progress import Progress
    from clippings.raylocal import init_ray

    options = ImportOptions(
        pages=args.pages,
        classes=parse_classes(args.classes) if args.format == "navigator" else (0,),
        min_score=getattr(args, "min_score", 0.5),
        box_format=getattr(args, "box_format", "xyxy"),
        box_units=getattr(args, "box_units", "pixels"),
        boxes=getattr(args, "boxes", None),
        iiif=getattr(args, "iiif", None),
        iiif_cache=os.path.abspath(args.iiif_cache) if getattr(args, "iiif_cache", None) else None,
        max_requests_per_minute=getattr(args, "max_requests_per_minute", None),
    )
    images = image_policy(args)
    init_ray()
    with Progress("import", unit="page") as bar:
        s = import_archive(args.format, args.input, args.out, options, images=images,
                           concurrency=args.concurrency, long_side=args.crop_long_side, progress=bar)
    left_out = f", left out by class/score: {s.skipped}" if s.skipped else ""
    finish(f"{s.pages} pages, {s.detections} detections: {s.rows} clippings, {s.quarantined} quarantined"
           f"{left_out} ({s.parts_done} parts written, {s.parts_resumed} done before)")
    return 0
