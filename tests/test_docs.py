"""The documentation stays true: the README stays short, every subcommand it names exists, every example
marked runnable runs, and every relative link (and its #anchor) resolves.

A fenced block whose info string is `bash runnable` must run offline in a few seconds from an empty folder:
its lines run in order in one temporary folder; a line starting with `clippings` runs in-process through
`clippings.cli.main` (fast, no subprocess start-up), any other line through bash.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from clippings import cli

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 200

FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.M | re.S)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M)


def _blocks(text: str) -> list[tuple[str, str, int]]:
    """(info string, body, line number of the opening fence) of each fenced code block."""
    return [(m.group(1).strip(), m.group(2), text.count("\n", 0, m.start()) + 1) for m in FENCE.finditer(text)]


def _commands(body: str) -> list[str]:
    """The block's shell lines, with backslash continuations joined; blank and comment lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", body)
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (not - or _), spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    out = set()
    for heading in HEADING.findall(text):
        slug = _slug(heading)
        out.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return out


def _run_clippings(argv: list[str]) -> int:
    try:
        return int(cli.main(argv) or 0)
    except SystemExit as e:  # argparse's --help, should main ever let it through
        return int(e.code or 0)


def test_readme_is_short():
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; keep it under {README_MAX_LINES} (details go to docs/)"


def test_readme_holds_no_history():
    """Dates, commits, loads, issue numbers and temporary paths belong in docs/benchmarks.md, not the README."""
    text = README.read_text(encoding="utf-8")
    for pattern, what in ((r"\b20\d\d-\d\d-\d\d\b", "a date"), (r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}\b", "a commit"),
                          (r"\bload (average )?\d", "a load average"), (r"(?i)\bissue\s*#?\d+|(?<![\w/])#\d+\b", "an issue"),
                          (r"(?<![\w.])/tmp/", "a temporary path")):
        found = re.search(pattern, text)
        assert not found, f"README.md holds {what}: {found.group(0)!r}; move it to docs/benchmarks.md"


def _readme_subcommands() -> list[str]:
    names = []
    for _, body, _ in _blocks(README.read_text(encoding="utf-8")):
        for line in _commands(body):
            m = re.match(r"clippings\s+([a-z][a-z-]*)\b", line)
            if m and m.group(1) not in names:
                names.append(m.group(1))
    return names


def test_readme_names_every_subcommand():
    """The synopsis is the CLI's: every subcommand the CLI has, and only those."""
    assert set(_readme_subcommands()) == set(cli.COMMANDS)


@pytest.mark.parametrize("name", _readme_subcommands())
def test_readme_subcommand_has_help(name, capsys):
    assert _run_clippings([name, "--help"]) == 0
    assert f"usage: clippings {name}" in capsys.readouterr().out


RUNNABLE = [
    pytest.param(body, id=f"{page.relative_to(ROOT)}:{line}")
    for page in PAGES
    for info, body, line in _blocks(page.read_text(encoding="utf-8"))
    if info.split() == ["bash", "runnable"]
]


def test_there_are_runnable_examples():
    assert len(RUNNABLE) >= 3


@pytest.mark.parametrize("body", RUNNABLE)
def test_runnable_block_runs(body, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = {**os.environ, "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])}
    for line in _commands(body):
        argv = shlex.split(line, comments=True)
        if argv[0] == "clippings":
            assert _run_clippings(argv[1:]) == 0, line
        else:
            done = subprocess.run(["bash", "-c", line], cwd=tmp_path, env=env, capture_output=True, text=True,
                                  timeout=60)
            assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"


def _links() -> list[tuple[Path, str]]:
    out = []
    for page in PAGES:
        text = FENCE.sub("", page.read_text(encoding="utf-8"))
        text = re.sub(r"`[^`\n]*`", "", text)  # inline code is not a link
        out += [(page, target) for target in LINK.findall(text)]
    return out


def test_pages_have_links():
    assert len(_links()) > 20


@pytest.mark.parametrize("page,target", [pytest.param(p, t, id=f"{p.name}->{t}") for p, t in _links()])
def test_relative_link_resolves(page, target):
    if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
        return
    path, _, anchor = target.partition("#")
    dest = (page.parent / path).resolve() if path else page
    assert dest.exists(), f"{page.relative_to(ROOT)} links to {target}: no such file"
    assert ROOT in dest.parents or dest == ROOT, f"{page.relative_to(ROOT)} links outside the repository: {target}"
    if anchor and dest.suffix == ".md":
        assert anchor in _anchors(dest), f"{page.relative_to(ROOT)} links to {target}: no heading with that anchor"
