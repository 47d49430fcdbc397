"""`clippings import navigator` on generated pages: 2 CPUs vs 1 CPU side by side, and a killed import resumed.

    python -m bench.importer [--quick] [--pages N] [--jpeg] [--repeat R]

Generates N pages (default 1,000; --quick 200) of 1200 × 1600 px with three photos each and their Navigator
per-page JSON, as JPEG 2000 (the format of the pages Navigator's `filepath` names; `--jpeg`: JPEG, cheaper
to decode, so that an import on 1 CPU takes about half as long and the pool's fixed start-up weighs more in
the ratio). Then imports them in a fresh process with Ray given 1 CPU and again with 2 CPUs (pages/s of the
import itself, Ray's start excluded), R times in turn (default 3), and prints each pair's ratio with the load
average around each run and the median of the R ratios (on a shared machine a ratio is only meaningful at a
low load; a VM's speed also drifts between runs, which the turns spread over both counts). Last, an import
with 2 CPUs is killed (SIGKILL to its process group) once a third of its parts are done, and run again: the
finished parts must be skipped (their markers untouched) and every detection must end as a row or a
quarantine entry.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

SIZE = (1200, 1600)
BOXES = [(60, 60, 580, 520), (640, 60, 1140, 520), (60, 620, 1140, 1240)]


def generate(folder: str, pages: int, jp2: bool = False) -> tuple[str, str]:
    """`pages` pages (photos pasted from a few smooth tiles, so generating is cheap) and their JSON."""
    from PIL import Image

    from clippings.importers.boxes import from_pixels

    page_dir, json_dir = os.path.join(folder, "pages"), os.path.join(folder, "json")
    os.makedirs(page_dir)
    os.makedirs(json_dir)
    rng = np.random.default_rng(0)
    tiles = []
    for k in range(12):
        y, x = np.mgrid[0:700, 0:1100].astype(np.float32)
        a, b = rng.uniform(0.3, 1.0, 2)
        tiles.append(Image.fromarray(np.stack([x / 1100 * 255 * a, y / 700 * 255 * b, np.full_like(x, 20 * k)],
                                              -1).astype(np.uint8)))
    ext = "jp2" if jp2 else "jpg"
    for i in range(pages):
        page = Image.new("RGB", SIZE, (245, 242, 235))
        for j, (x0, y0, x1, y1) in enumerate(BOXES):
            page.paste(tiles[(i + j) % len(tiles)].crop((0, 0, x1 - x0, y1 - y0)), (x0, y0))
        name = f"sn{i // 100:03d}/seq-{i:05d}.{ext}"
        os.makedirs(os.path.join(page_dir, os.path.dirname(name)), exist_ok=True)
        page.save(os.path.join(page_dir, name), "JPEG2000" if jp2 else "JPEG", **({} if jp2 else {"quality": 90}))
        doc = {"filepath": name, "lccn": f"sn{i // 100:03d}", "pub_date": "1910-01-01", "edition_seq_num": 1,
               "page_seq_num": i, "boxes": [list(from_pixels(b, "xyxy", "fraction", SIZE)) for b in BOXES],
               "scores": [0.9, 0.8, 0.7], "pred_classes": [0, 0, 0], "ocr": [["photo", str(i), str(j)] for j in range(3)]}
        with open(os.path.join(json_dir, f"page-{i:05d}.json"), "w") as f:
            json.dump(doc, f)
    return json_dir, page_dir


def child(cpus: int, input_path: str, pages: str, out: str) -> None:
    """One import in this process with Ray given `cpus` CPUs; prints a JSON line of its counts and time."""
    from clippings.importers.job import import_archive
    from clippings.importers.records import ImportOptions
    from clippings.raylocal import init_ray

    init_ray(num_cpus=cpus, object_store_gb=0.5)
    summary = import_archive("navigator", input_path, out, ImportOptions(pages=pages))
    print(json.dumps({"cpus": cpus, "seconds": summary.seconds, "pages": summary.pages, "rows": summary.rows,
                      "quarantined": summary.quarantined, "detections": summary.detections,
                      "resumed": summary.parts_resumed, "written": summary.parts_done,
                      "resumed_pages": summary.resumed_pages}), flush=True)


def _child_cmd(cpus: int, input_path: str, pages: str, out: str) -> list[str]:
    return [sys.executable, "-m", "bench.importer", "--child", str(cpus), input_path, pages, out]


def _run(cpus: int, input_path: str, pages: str, out: str) -> dict:
    load = os.getloadavg()[0]
    done = subprocess.run(_child_cmd(cpus, input_path, pages, out), capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["load_before"], result["load_after"] = load, os.getloadavg()[0]
    return result


def _markers(out: str) -> dict[str, int]:
    folder = os.path.join(out, "_done")
    if not os.path.isdir(folder):
        return {}
    return {n: os.stat(os.path.join(folder, n)).st_mtime_ns for n in os.listdir(folder) if n.endswith(".json")}


def kill_and_resume(input_path: str, pages: str, out: str, parts: int) -> dict:
    """Start a 2-CPU import, SIGKILL its process group once a third of its parts are done, run it again."""
    proc = subprocess.Popen(_child_cmd(2, input_path, pages, out), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    while len(_markers(out)) < parts // 3 and proc.poll() is None:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(2)  # the killed run's workers are gone before the markers are read
    before = _markers(out)
    result = _run(2, input_path, pages, out)
    after = _markers(out)
    result["killed_with_parts"] = len(before)
    result["untouched"] = all(after.get(n) == t for n, t in before.items())
    return result


def main(argv: list[str]) -> None:
    if argv[:1] == ["--child"]:
        child(int(argv[1]), argv[2], argv[3], argv[4])
        return
    parser = argparse.ArgumentParser(prog="python -m bench.importer")
    parser.add_argument("--quick", action="store_true", help="200 pages")
    parser.add_argument("--pages", type=int, default=None, help="pages to generate (default: 1000)")
    parser.add_argument("--jpeg", action="store_true",
                        help="pages as JPEG (default: JPEG 2000, the format of Newspaper Navigator's and Chronicling "
                             "America's pages)")
    parser.add_argument("--repeat", type=int, default=3, help="1-CPU / 2-CPU pairs run in turn (default: 3)")
    args = parser.parse_args(argv)
    n = args.pages or (200 if args.quick else 1000)
    from clippings.importers.job import PAGES_PER_PART

    with tempfile.TemporaryDirectory(prefix="bench-importer-") as tmp:
        start = time.perf_counter()
        jp2 = not args.jpeg
        input_path, pages = generate(tmp, n, jp2)
        print(f"generated {n} pages ({'JPEG 2000' if jp2 else 'JPEG'}, {SIZE[0]}x{SIZE[1]}, 3 photos each) "
              f"in {time.perf_counter() - start:.1f} s")
        print(f"{'turn':>4} {'CPUs':>4} {'pages':>6} {'rows':>6} {'seconds':>8} {'pages/s':>8} {'load before':>12} "
              f"{'after':>6}")
        ratios = []
        for turn in range(1, args.repeat + 1):
            rates = {}
            for cpus in (1, 2):
                r = _run(cpus, input_path, pages, os.path.join(tmp, f"out{turn}-{cpus}"))
                rates[cpus] = r["pages"] / r["seconds"]
                print(f"{turn:>4} {cpus:>4} {r['pages']:>6} {r['rows']:>6} {r['seconds']:>8.1f} {rates[cpus]:>8.1f} "
                      f"{r['load_before']:>12.2f} {r['load_after']:>6.2f}")
            ratios.append(rates[2] / rates[1])
        print(f"2 CPUs / 1 CPU: median {statistics.median(ratios):.2f}x of {', '.join(f'{x:.2f}' for x in ratios)} "
              f"(load average now {os.getloadavg()[0]:.2f})")
        parts = -(-n // PAGES_PER_PART)
        r = kill_and_resume(input_path, pages, os.path.join(tmp, "killed"), parts)
        whole = r["rows"] + r["quarantined"] == r["detections"] == 3 * n
        print(f"killed with {r['killed_with_parts']}/{parts} parts done; the re-run skipped {r['resumed']} parts "
              f"({r['resumed_pages']} pages), wrote {r['written']}, finished parts untouched: {r['untouched']}; "
              f"rows {r['rows']} + quarantined {r['quarantined']} = detections {r['detections']}: {whole}")


if __name__ == "__main__":
    main(sys.argv[1:])
