"""The main job end to end through the real CLI: every row measured, artifacts valid, re-runs resume."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import adjusted_rand_score

from clippings.archive import read_archive
from clippings.cli import main
from clippings.embeddings import read_embeddings
from clippings.progress import PLAIN_EVERY_S
from clippings.results_table import PAPER_ARI, ROWS
from tests.console_helpers import assert_quiet_about_ray, run_clippings

pytestmark = pytest.mark.slow

# the plain progress line of clippings.progress.Progress: 'train: 72/72 samples (100%), epoch 1/1'
PROGRESS = re.compile(r"[a-z]+: [0-9]+/[0-9]+ [a-z]+s \([0-9]+%\)")
SMALL = ["--stories", "40", "--pretrain-epochs", "1", "--train-epochs", "1"]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, ray_local):
    """`clippings demo` as a new user runs it: the real console script in a fresh process with its own local
    Ray. Returns (its output folder, the lines it printed). The tests that run the demo again do so in this
    process, on the session's Ray."""
    cwd = tmp_path_factory.mktemp("demo")
    lines = run_clippings("demo", "--out", str(cwd / "out"), *SMALL, cwd=str(cwd))
    return cwd / "out", lines


@pytest.fixture(scope="module")
def demo_out(demo_run):
    return demo_run[0]


def test_the_demo_prints_a_start_and_an_end_line_per_stage_and_ray_goes_to_the_logs(demo_run):
    out, lines = demo_run
    assert_quiet_about_ray(lines)
    assert lines[0] == "demo: writing out"  # paths as a person would type them: relative to the working directory
    table = next(i for i, line in enumerate(lines) if line.startswith("# Replication"))
    names, ends, i = [], [], 1
    while i < table:  # each stage: a start line naming its inputs, its progress lines, an end line
        name = lines[i].split(": ", 1)[0]
        progress = []
        while PROGRESS.match(lines[i + 1 + len(progress)]):
            progress.append(lines[i + 1 + len(progress)])
        end = lines[i + 1 + len(progress)]
        # the end line names the output, the time and the log file
        stage_time = re.match(rf"{name}: .* in (?:([0-9]+) min )?([0-9.]+) (s|min).* -> \S+ \(log: ", end)
        assert stage_time, "\n".join(lines)
        seconds = 60 * float(stage_time[1] or 0) + float(stage_time[2]) * (60 if stage_time[3] == "min" else 1)
        # a long stage's plain progress lines (stdout is not a terminal): its own, each once, one per 30 s
        assert all(line.startswith(f"{name}: ") for line in progress), "\n".join(lines)
        assert len(set(progress)) == len(progress) <= 1 + seconds / PLAIN_EVERY_S, "\n".join(lines)
        names.append(name)
        ends.append(end)
        i += 2 + len(progress)
    assert len(set(ends)) == len(ends), "\n".join(ends)
    assert {"synth", "baseline", "embed", "tune", "link", "evaluate", "pretrain", "train", "fuse", "report"} \
        == set(names)
    assert any(end.startswith("embed: embedded: ") for end in ends)
    assert re.match(r"demo: .* in [0-9.]+ (s|min).* -> out \(log: demo.log\)$", lines[-2]), lines[-2]
    assert lines[-1].startswith("Open next: ")
    # Ray's own output (Ray Train's controller and workers) went to the stage's log file instead
    log = (out / "models" / "selfsup_runs" / "pretrain.log").read_text()
    assert "(RayTrainWorker pid=" in log and "pretrain epoch 1/1: loss" in log


def test_demo_measures_every_row(demo_out):
    results = json.loads((demo_out / "results.json").read_text())
    assert set(results["rows"]) == set(ROWS) and set(PAPER_ARI) <= set(ROWS)
    test = read_archive(str(demo_out / "data" / "test"), require_labels=True)
    label_of = dict(zip(test.column("clipping_id").to_pylist(), test.column("label").to_pylist(), strict=True))
    for name, row in results["rows"].items():
        links = demo_out / "links" / os.path.basename(row["links"])
        clusters = pq.read_table(links / "clusters.parquet").to_pydict()
        # oracle: the table's ARI is sklearn's ARI of the written clusters against the test labels
        assert sorted(clusters["clipping_id"]) == sorted(label_of)
        truth = [label_of[i] for i in clusters["clipping_id"]]
        assert row["ari"] == pytest.approx(adjusted_rand_score(truth, clusters["cluster_id"]), abs=1e-12)
        if name != "Jaccard":
            assert 0.0 <= row["threshold"] <= 2.0 and 0.0 <= row["im_wt"] <= 1.0
    assert results["rows"]["Self-supervised visual"]["im_wt"] == 1.0
    assert results["rows"]["Supervised language"]["im_wt"] == 0.0
    table = (demo_out / "results.md").read_text()
    assert all(f"| {name} |" in table for name in ROWS)


def test_demo_artifacts_follow_the_data_contract(demo_out):
    for split in ("unlabelled", "train", "val", "test"):
        read_archive(str(demo_out / "data" / split), require_labels=split != "unlabelled")
    test_ids = set(read_archive(str(demo_out / "data" / "test")).column("clipping_id").to_pylist())
    for model in ("selfsup", "supervised_visual", "supervised_language", "supervised_multimodal"):
        emb = read_embeddings(str(demo_out / "embeddings" / model / "test"))
        assert set(emb.ids.tolist()) == test_ids
        np.testing.assert_allclose(np.linalg.norm(emb.image, axis=1), 1.0, atol=1e-3)
    links = demo_out / "links" / "supervised_multimodal_multimodal"
    mst = pq.read_table(links / "mst.parquet")
    assert mst.num_rows <= len(test_ids) - 1
    meta = json.loads((demo_out / "models" / "supervised_multimodal" / "clippings.json").read_text())
    assert {"im_wt", "threshold", "val_ari"} <= set(meta)
    index = (demo_out / "report" / "index.html").read_text()
    assert "<html" in index.lower() and "search" in index.lower()


def test_rerun_resumes_instead_of_recomputing(demo_out):
    """The rerun runs in another working directory than the demo did (this process's): it resumes all the
    same."""
    before = (demo_out / "stages.json").read_text()
    weights = demo_out / "models" / "supervised_multimodal" / "model.safetensors"
    mtime = weights.stat().st_mtime_ns
    assert main(["demo", "--out", str(demo_out), *SMALL]) == 0
    assert (demo_out / "stages.json").read_text() == before
    assert weights.stat().st_mtime_ns == mtime


def test_rerun_with_other_settings_is_refused(demo_out, capsys):
    before = (demo_out / "stages.json").read_text()
    capsys.readouterr()
    assert main(["demo", "--out", str(demo_out), *SMALL[:-1], "2"]) == 2  # --train-epochs 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ("stage 'train-visual' was made with --epochs = '1', but this run has "
                                     "--epochs = '2'; pass --overwrite to start afresh") in err
    assert (demo_out / "stages.json").read_text() == before


def test_status_of_a_finished_demo_has_nothing_left(demo_out, capsys):
    # the plan status reads is the one demo ran: a stage it misses shows as left
    capsys.readouterr()
    assert main(["status", str(demo_out)]) == 0
    printed = capsys.readouterr().out
    assert "all stages finished; open report/index.html" in printed and "  left " not in printed
    assert "Made by: Supervised multimodal (model " in (demo_out / "report" / "index.html").read_text()
