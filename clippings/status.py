"""Where a replicate or demo folder stands: which stages finished (from `stages.json`), their times, what is left.

`replicate` and `demo` record each finished stage in `OUT/stages.json` (seconds and command line); the
stages they run, in order, are `clippings.replicate.stage_plan`'s. A multi-seed replicate keeps one
folder per seed (`OUT/seed-<s>/`), each read the same way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from clippings.errors import BadInput
from clippings.replicate import SCALES, Run, stage_plan
from clippings.stages import Stage, not_run
from clippings.storage import exists, join, read_json

SHOWN_LEFT = 6
"""Stages left that `status` names one by one; the rest are counted."""


def planned_stages(folder: str, built_in: bool, demo: bool, label_free: bool = False) -> list[Stage]:
    """The stages a replicate run (with its label-free rows or not) or a demo in `folder` runs, in order (their
    names and order do not depend on the scale or the seed)."""
    return stage_plan(Run(folder, join(folder, "data"), SCALES["small"]), built_in, label_free, demo)


@dataclass
class RunStatus:
    """One run folder: its kind, the finished stages with seconds (in plan order), and those left."""

    folder: str
    kind: str
    done: dict[str, float] = field(default_factory=dict)
    left: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return sum(self.done.values())


def run_status(folder: str) -> RunStatus:
    """The status of one replicate/demo folder (local or s3://). BadInput when it holds no stages.json."""
    path = join(folder, "stages.json")
    if not exists(path):
        raise BadInput(f"status {folder}: no stages.json; give the --out folder of 'clippings replicate' or "
                       "'clippings demo' (it appears when the first stage finishes)")
    record = read_json(path)
    demo = exists(join(folder, "demo.log")) or "report" in record
    # synth is the first stage when it runs; a run with the label-free rows has run an "-auto" stage once the
    # frozen rows are tuned
    label_free = any(name.endswith("-auto") for name in record)
    stages = planned_stages(folder, built_in="synth" in record, demo=demo, label_free=label_free)
    skipped = not_run(stages, record)
    plan = [stage.name for stage in stages if stage.name not in skipped]
    plan += [name for name in record if name not in plan]  # stages this code no longer plans still count
    done = {name: float(record[name]["seconds"]) for name in plan if name in record}
    return RunStatus(folder, "demo" if demo else "replicate", done, [n for n in plan if n not in record])


def folder_status(out: str) -> list[RunStatus]:
    """The status of `out`, or of each `out/seed-<s>/` of a multi-seed replicate."""
    if not exists(join(out, "stages.json")) and os.path.isdir(out):
        seeds = sorted((n for n in os.listdir(out) if n.startswith("seed-")), key=lambda n: int(n[5:] or 0))
        if seeds:
            return [run_status(join(out, name)) for name in seeds]
    return [run_status(out)]


def status_lines(status: RunStatus) -> list[str]:
    """The lines `clippings status` prints for one run folder."""
    from clippings.logs import elapsed, show_path

    total = len(status.done) + len(status.left)
    lines = [f"{show_path(status.folder)}: {status.kind}, {len(status.done)} of {total} stages finished "
             f"({elapsed(status.seconds)} of stage time)"]
    lines += [f"  done  {name:<32} {elapsed(seconds):>12}" for name, seconds in status.done.items()]
    if status.left:
        lines.append(f"  next  {status.left[0]:<32} (running now, or where a re-run resumes)")
        rest = status.left[1:]
        if rest:
            more = f" and {len(rest) - SHOWN_LEFT} more, the last {rest[-1]}" if len(rest) > SHOWN_LEFT else ""
            lines.append(f"  left  {', '.join(rest[:SHOWN_LEFT])}{more}")
        lines.append(f"  Resume: clippings {status.kind} --out {show_path(status.folder)} (finished stages are "
                     "skipped)")
    else:
        opened = "report/index.html (the linked groups) and " if status.kind == "demo" else ""
        lines.append(f"  all stages finished; open {opened}results.md (the table) in "
                     f"{show_path(status.folder)}")
    return lines
