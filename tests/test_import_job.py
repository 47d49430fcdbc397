"""`clippings import` through cli.main on local Ray: parts written by the tasks, resume without redoing finished
parts, s3:// in and out, the help and the one-line errors."""

from __future__ import annotations

import os

import pytest
from import_helpers import make_page, navigator_page_json, save_page, write_json

from clippings import cli
from clippings.archive import read_archive, read_quarantine
from clippings.importers import job
from clippings.importers.records import ImportOptions


@pytest.fixture(scope="module")
def navigator_input(tmp_path_factory):
    """Five pages of two photos each, their per-page JSON, and one JSON naming a missing page."""
    root = tmp_path_factory.mktemp("nav")
    pages, docs = root / "pages", root / "json"
    for i in range(5):
        page = make_page(f"batch/seq-{i}.jp2", (400, 520), [(20, 20, 380, 200), (20, 260, 200, 480)],
                         [f"Photo {i} one", f"Photo {i} two"], seed=10 + i)
        save_page(page, str(pages))
        write_json(str(docs / f"page-{i}.json"), navigator_page_json(page))
    lost = navigator_page_json(page)
    lost["filepath"] = "batch/seq-404.jp2"
    write_json(str(docs / "page-9.json"), lost)
    return str(docs), str(pages)


def _ids(out: str) -> tuple[list[str], dict[str, str]]:
    rows = read_archive(out)
    bad = {q["clipping_id"]: q["reason"] for q in read_quarantine(out).to_pylist()}
    return sorted(rows.column("clipping_id").to_pylist()), bad


def test_import_navigator_cli_resumes_without_redoing_parts(ray_local, tmp_path, navigator_input, monkeypatch,
                                                            capsys):
    docs, pages = navigator_input
    monkeypatch.setattr(job, "PAGES_PER_PART", 2)
    out = str(tmp_path / "archive")
    # a run that crashed after its first task: that task's part and marker exist, nothing else
    tasks, _ = job.plan_tasks("navigator", docs, ImportOptions(pages=pages))
    assert len(tasks) == 3
    first = job.run_task(tasks[0], "navigator", ImportOptions(pages=pages), out)
    marker = os.path.join(out, "_done", "part-00000.parquet.json")
    stamp = os.stat(marker).st_mtime_ns
    argv = ["import", "navigator", "--input", docs, "--pages", pages, "--out", out]
    assert cli.main(argv) == 0
    said = capsys.readouterr().out
    assert "6 pages, 12 detections: 10 clippings, 2 quarantined (2 parts written, 1 done before)" in said
    assert os.stat(marker).st_mtime_ns == stamp and first["rows"] == 4
    ids, bad = _ids(out)
    assert len(ids) == 10 and len(bad) == 2 and all("page image not found" in r for r in bad.values())
    assert sorted(p for p in os.listdir(out) if p.startswith("part-")) == [f"part-0000{i}.parquet" for i in range(3)]
    # a second run finds everything done and changes nothing
    assert cli.main(argv) == 0
    assert "(0 parts written, 3 done before)" in capsys.readouterr().out
    assert _ids(out) == (ids, bad)
    # other settings or other input into the same folder are refused in one line
    assert cli.main([*argv, "--min-score", "0.6"]) == 2
    assert "use a new --out folder" in capsys.readouterr().err
    monkeypatch.setattr(job, "PAGES_PER_PART", 3)
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "use a new --out folder" in err


def test_import_from_and_to_s3(ray_local, s3_bucket, navigator_input, tmp_path):
    import s3fs

    docs, pages = navigator_input
    fs = s3fs.S3FileSystem()
    bucket = s3_bucket[len("s3://"):]
    fs.put(docs, f"{bucket}/in/json", recursive=True)
    fs.put(pages, f"{bucket}/in/pages", recursive=True)
    out = f"{s3_bucket}/archive"
    argv = ["import", "navigator", "--input", f"{s3_bucket}/in/json", "--pages", f"{s3_bucket}/in/pages",
            "--out", out]
    assert cli.main(argv) == 0
    ids, bad = _ids(out)
    local = str(tmp_path / "local")
    assert cli.main(["import", "navigator", "--input", docs, "--pages", pages, "--out", local]) == 0
    assert _ids(local)[0] == ids and sorted(_ids(local)[1]) == sorted(bad)


def test_import_help_lists_the_four_formats_and_errors_are_one_line(tmp_path, capsys):
    assert cli.main(["import", "--help"]) == 0
    text = capsys.readouterr().out
    assert all(f in text for f in ("navigator", "americanstories", "alto", "manifest"))
    assert cli.main(["import", "alto", "--input", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("clippings import: error: alto input") and "not found" in err and "\n" not in err
    assert cli.main(["import", "navigator", "--input", str(tmp_path), "--out", str(tmp_path / "o"),
                     "--min-score", "1.5"]) == 2
    assert "The 'min_score' parameter of import must be a float in the range [0.0, 1.0]" in capsys.readouterr().err
    assert cli.main(["import", "navigator", "--input", str(tmp_path), "--out", str(tmp_path / "o"),
                     "--classes", "Photograph,Cat"]) == 2
    assert "Got 'Cat' instead" in capsys.readouterr().err


def test_the_same_page_in_two_documents_stops_with_the_ids(ray_local, tmp_path, navigator_input, capsys):
    docs, pages = navigator_input
    twice = tmp_path / "twice"
    twice.mkdir()
    for name in ("one.json", "two.json"):
        (twice / name).write_text(open(os.path.join(docs, "page-0.json")).read())
    argv = ["import", "navigator", "--input", str(twice), "--pages", pages, "--out", str(tmp_path / "o")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "appears 2 times; ids must be unique: deduplicate the input" in err
