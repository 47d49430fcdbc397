"""The command line's entry: usage errors, help, and local paths made absolute for Ray workers."""

from __future__ import annotations

import os
import subprocess
import sys

from clippings.cli import COMMANDS, absolute_paths, build_parser, main


def test_help_and_usage_errors(capsys):
    assert main(["--help"]) == 0
    assert main(["link", "--out", "x", "--no-such-flag"]) == 2
    assert "unrecognized arguments: --no-such-flag" in capsys.readouterr().err
    assert main([]) == 2
    for name in COMMANDS:
        assert main([name, "--help"]) == 0


def test_relative_paths_become_absolute_but_models_by_name_stay(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    os.makedirs("models/selfsup")
    parser = build_parser()
    args = absolute_paths(parser.parse_args(
        ["train", "--archive", "data/train", "--val", "data/val", "--out", "m", "--model", "models/selfsup"]))
    assert args.archive == str(tmp_path / "data/train") and args.out == str(tmp_path / "m")
    assert args.model == str(tmp_path / "models/selfsup")
    for model in ("tiny", "openai/clip-vit-base-patch32", "s3://bucket/model"):
        args = absolute_paths(parser.parse_args(["embed", "--archive", "s3://b/a", "--model", model, "--out", "e"]))
        assert args.model == model and args.archive == "s3://b/a" and args.out == str(tmp_path / "e")


HEAVY = ("torch", "transformers", "ray", "faiss", "sklearn")
HELP_SCRIPT = """
import contextlib, io, sys
from clippings.cli import COMMANDS, build_parser, main
from clippings.commands.import_ import FORMAT_HELP

build_parser()
helps = [[name, "--help"] for name in COMMANDS] + [["import", fmt, "--help"] for fmt in FORMAT_HELP]
for argv in helps:
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(argv) == 0, argv
print(" ".join(sorted({{m.split(".")[0] for m in sys.modules}} & {heavy})))
"""


def test_parser_and_every_help_import_no_heavy_library():
    """`clippings <command> --help` stays quick: building the parser imports no torch, transformers, ray,
    faiss or sklearn (a fresh interpreter, since this test process may have imported them already)."""
    script = HELP_SCRIPT.format(heavy=set(HEAVY))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    loaded = done.stdout.split()
    assert not loaded, (f"building the parser or a subcommand's --help imported {', '.join(loaded)}: move that "
                        "import into the command's run() or take the constant from a light module (clippings.params)")


def test_a_refused_stage_leaves_no_folder_but_keeps_its_log_where_it_wrote_more(tmp_path, capsys):
    """A command refused before any work (here a bad --view-p) leaves no `<out>_runs/` behind; a refusal in a
    run folder that holds other files keeps its log there, with the start line."""
    train = ["train", "--archive", "a", "--val", "v", "--model", "tiny", "--view-p", "1.5"]
    out = tmp_path / "deep" / "model"
    assert main([*train, "--out", str(out)]) == 2
    assert not (tmp_path / "deep").exists()
    runs = tmp_path / "kept_runs"
    runs.mkdir()
    (runs / "metrics.csv").write_text("epoch\n")
    assert main([*train, "--out", str(tmp_path / "kept")]) == 2
    assert "train: " in (runs / "train.log").read_text()
    assert capsys.readouterr().err.count("error:") == 2
