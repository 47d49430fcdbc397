"""Named, resumable stages: a plan is a list of `Stage`s, run once each and recorded in `out/stages.json`.

`replicate`, `demo` and `status` share one plan (`clippings.replicate.stage_plan`): the first two run it, the
third reads its names against the record. A stage is a `clippings` command line, run in this process
(`cli_main`); the command line is also the stage's settings record, the one a re-run is compared with and the
one the log shows, so every stage can be repeated by hand.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from clippings.errors import BadInput
from clippings.logs import DETAIL
from clippings.settings import check_settings
from clippings.storage import exists, join, read_json, remove_tree, write_json

log = logging.getLogger("clippings.stages")

RESUMING_COMMANDS = ("pretrain", "train", "embed")
"""Stage commands that resume earlier work in their own output; `StageRunner(overwrite=True)` passes them
--overwrite, so a fresh run recomputes them too."""


@dataclass(frozen=True)
class Stage:
    """One step of a plan: `clippings <argv()>` under `name`.

    argv: built when the stage runs, not when the plan is made: a stage's flags may read what the stages before
    it wrote (a link reads the t its tune chose), while every name is known before the first stage runs.
    refusable: exit 2 is an outcome (recorded as `refused`), not an error: the label-free cut refuses where it
    sees no clear valley. needs: the stage whose output this one reads; when that one was refused, or did not
    run for the same reason, this one does not run either, and is not left to do.
    """

    name: str
    argv: Callable[[], list[str]]
    refusable: bool = False
    needs: str | None = None


def not_run(plan: Iterable[Stage], record: Mapping[str, dict]) -> set[str]:
    """Names of the stages in `plan` that never run because a stage they need (directly, or through another)
    was refused, by the record of a run so far."""
    skipped: set[str] = set()
    for stage in plan:
        if _left_out(stage, skipped, record):
            skipped.add(stage.name)
    return skipped


def _left_out(stage: Stage, skipped: set[str], record: Mapping[str, dict]) -> bool:
    return stage.needs is not None and (stage.needs in skipped or bool(record.get(stage.needs, {}).get("refused")))


class StageRunner:
    """Runs named stages once: a finished stage (recorded in `out/stages.json`) is skipped on re-run.

    A stage's record holds its command line and `inputs` (fingerprints of data the command lines do not
    identify: a given archive's parts). A re-run skips it only when it asks the same command line with the
    same inputs: a stage's output is made from the stages before it, so whatever a command line sets
    (scale, seed, epochs, weights, image policy) defines it. Any other is refused, one BadInput line naming
    the first flag that differs (`clippings.settings.check_settings`). The seconds are not compared.
    overwrite: forget every finished stage (stages.json is removed now) and run each afresh.
    """

    def __init__(self, out: str, cli_main: Callable[[list[str]], int], inputs: Mapping[str, Any] | None = None,
                 overwrite: bool = False):
        self.out = out
        self.cli_main = cli_main
        self.inputs = dict(inputs or {})
        self.overwrite = overwrite
        self.record_path = join(out, "stages.json")
        if overwrite and remove_tree(self.record_path):
            log.info("--overwrite: every stage of %s runs again", out)
        self.record: dict = read_json(self.record_path) if exists(self.record_path) else {}

    def run_plan(self, plan: Iterable[Stage]) -> None:
        """Run every stage of `plan` in order, but those a refusal leaves out (`not_run`)."""
        skipped: set[str] = set()
        for stage in plan:
            if _left_out(stage, skipped, self.record):
                skipped.add(stage.name)
            else:
                self.run(stage.name, stage.argv(), stage.refusable)

    def run(self, name: str, argv: list[str], refusable: bool = False) -> None:
        """Run `clippings <argv>` unless `name` finished before with the same settings; raise on failure or
        when it finished with other settings. refusable: a refusal of the command (exit 2, its reason on
        the console and in the log) is an outcome, recorded as the stage's `refused`, not an error (the
        stages that need it then do not run: `run_plan`)."""
        entry = {"argv": argv, **({"inputs": self.inputs} if self.inputs else {})}
        if name in self.record:
            check_settings(stage_settings(self.record[name]), stage_settings(entry),
                           f"replicate {self.out}: stage {name!r}", "--out")
            log.info("%s: done before, skipped", name)
            return
        command = [*argv, "--overwrite"] if self.overwrite and argv[0] in RESUMING_COMMANDS else argv
        # the command prints its own start and end lines; the exact command line is for the log file
        logging.getLogger(DETAIL).info("stage %s: clippings %s", name, " ".join(command))
        start = time.perf_counter()
        code = self.cli_main(command)
        refused = refusable and code == 2
        if code != 0 and not refused:
            raise BadInput(f"replicate stage {name!r} failed (exit {code}): clippings {' '.join(command)}")
        self.record[name] = {"seconds": round(time.perf_counter() - start, 2), **entry,
                             **({"refused": True} if refused else {})}
        write_json(self.record_path, self.record)


def stage_settings(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A stage record's settings to compare: its command line by flag (a refusal names the flag that
    differs: {'command': subcommand, '--flag': value, a list when repeated, True when bare}) and, when it
    has them, its inputs (an entry without them ran on data its command line identifies)."""
    argv = list(entry["argv"])
    flags: dict[str, list] = {}
    i = 1
    while i < len(argv):
        bare = i + 1 == len(argv) or argv[i + 1].startswith("--")
        flags.setdefault(argv[i], []).append(True if bare else argv[i + 1])
        i += 1 if bare else 2
    settings = {"command": argv[0], **{k: v[0] if len(v) == 1 else v for k, v in flags.items()}}
    if "inputs" in entry:
        settings["inputs"] = entry["inputs"]
    return settings
