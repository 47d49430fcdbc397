"""The command line's entry: usage errors, help, and local paths made absolute for Ray workers."""

from __future__ import annotations

import os

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
