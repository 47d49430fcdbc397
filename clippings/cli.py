"""The `clippings` console script. One argument definition per subcommand, shared with `jobs/*.py`.

Each subcommand lives in `clippings/commands/<name>.py` with `HELP`, `add_arguments(parser)` and
`run(args) -> int`. Those modules import heavy libraries (torch, ray, faiss) inside `run`, so `--help` is fast.
Exit codes: 0 success, 2 bad input or usage (one line on stderr), 1 anything else (one line on stderr for a
`RunFailed`, whose traceback is in the stage's log file).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from clippings.errors import BadInput, RunFailed

COMMANDS = (
    "import",
    "synth",
    "baseline",
    "compose",
    "pretrain",
    "train",
    "mine",
    "label",
    "embed",
    "fuse",
    "tune",
    "link",
    "evaluate",
    "report",
    "replicate",
    "demo",
    "status",
)


PATH_ARGS = ("input", "pages", "boxes", "archive", "val", "out", "embeddings", "links", "run_dir", "curve",
             "from_links", "add", "to", "pairs", "image_embeddings", "text_embeddings",
             "index_dir")
"""Arguments holding local paths or URIs. Local ones are made absolute at the entry, because Ray workers and
actors run in other working directories (a relative path would name another folder there)."""


def absolute_paths(args: argparse.Namespace) -> argparse.Namespace:
    """Make local path arguments absolute; `--model` only when it names an existing local folder."""
    for name in PATH_ARGS:
        value = getattr(args, name, None)
        if isinstance(value, str) and "://" not in value:
            setattr(args, name, os.path.abspath(value))
    model = getattr(args, "model", None)
    if isinstance(model, str) and "://" not in model and os.path.isdir(model):
        args.model = os.path.abspath(model)
    return args


def _command_module(name: str):
    return importlib.import_module(f"clippings.commands.{name}_" if name == "import" else  # a keyword
                                   f"clippings.commands.{name}")


VERBOSE_HELP = ("show Ray's, Ray Data's and Ray Train's own output on the console (by default it goes to the "
                "stage's log file); CLIPPINGS_VERBOSE=1 does the same for jobs")
INPUT_ARGS = ("input", "archive", "val", "embeddings", "links", "from_links", "add", "to", "model", "curve",
              "pairs", "image_embeddings", "text_embeddings")
"""Arguments a stage's start line names (what it reads); its end line names where the output went."""
NO_STAGE = ("status",)
"""Subcommands that only read: no start/end lines, no log file."""


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser; with `only`, just that subcommand's (for the job entrypoints).

    `--verbose` is accepted before and after the subcommand (a job's arguments all follow it).
    """
    parser = argparse.ArgumentParser(prog="clippings", description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        if only is not None and name != only:
            continue
        module = _command_module(name)
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP)
    return parser


def start_line(args: argparse.Namespace) -> str:
    """What the stage reads, as its start line says it: 'archive data/test, model models/m'."""
    from clippings.logs import show_path

    parts = [f"{name.replace('_', '-')} {show_path(str(value))}" for name in INPUT_ARGS
             if (value := getattr(args, name, None))]
    return ", ".join(parts) or f"writing {show_path(str(getattr(args, 'out', None) or '.'))}"


def log_dir_of(args: argparse.Namespace) -> str | None:
    """Where the stage's log file goes: beside its output (training: in the run folder, with the checkpoints
    and metrics.csv, so the model folder stays plain HF; evaluate: the links folder it scores)."""
    if args.command in ("pretrain", "train"):
        return args.run_dir or args.out.rstrip("/") + "_runs"
    if args.command == "evaluate":
        return args.links
    return getattr(args, "out", None)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; returns the exit code (callable from tests)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    only = argv[0] if argv and argv[0] in COMMANDS else None
    parser = build_parser(only)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse: usage errors are exit 2, --help exit 0
        return int(e.code or 0)
    from clippings.logs import stage, verbose, verbose_mode

    try:
        args = absolute_paths(args)
        with verbose_mode(args.verbose):
            if not verbose():
                os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # transformers' load/save bars
            if args.command in NO_STAGE:
                return int(_command_module(args.command).run(args) or 0)
            with stage(args.command, start_line(args), log_dir_of(args), getattr(args, "out", None)):
                return int(_command_module(args.command).run(args) or 0)
    except BadInput as e:
        print(f"clippings {args.command}: error: {e}", file=sys.stderr)
        return 2
    except RunFailed as e:
        print(f"clippings {args.command}: error: {e}", file=sys.stderr)
        return 1


def run_job(command: str) -> int:
    """Entry for `jobs/<command>.py` under `ray job submit`: the same arguments as the CLI subcommand."""
    return main([command, *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
