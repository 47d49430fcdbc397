"""Answers as labelled groups in the archive contract, usable as `train` / `val` of `clippings train`.

A group is a component of the Same answers, split where a Different says so: Same pairs are joined in order
of distance (the surest first), and a join that would put the two clippings of a Different answer in one
group is refused and reported as a conflict naming both answers. Every clipping of a Same or Different
answer gets a label (its group's smallest id; a clipping only ever answered Different is a group of its
own). The groups are only as complete as the answers: two reprints never asked about may sit in two groups.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from clippings.archive import ARCHIVE_SCHEMA, iter_archive_parts
from clippings.errors import BadInput
from clippings.image_paths import ARCHIVE_ONLY, ImagePolicy, read_row_image
from clippings.label.answers import Answer
from clippings.storage import join, write_dataset, write_json


@dataclass
class Groups:
    """label of each answered clipping, and the conflicts: {"same": [a, b], "different": [c, d]} per Same
    answer refused because it would have joined the two clippings of the Different answer (c, d)."""

    labels: dict[str, str]
    conflicts: list[dict]

    def sizes(self) -> np.ndarray:
        return np.unique(list(self.labels.values()), return_counts=True)[1] if self.labels else np.empty(0, int)


def answered_groups(answers: Sequence[Answer]) -> Groups:
    """Groups of the Same answers split by the Different ones (see the module doc).

    Cost: O(S·D) for S Same and D Different answers (each join checks the Different pairs), O(n) memory.
    """
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    different = [(a.a, a.b) for a in answers if a.answer == "different"]
    for a, b in different:
        find(a), find(b)
    conflicts = []
    for s in sorted((a for a in answers if a.answer == "same"), key=lambda a: (a.distance, a.key)):
        ra, rb = find(s.a), find(s.b)
        if ra == rb:
            continue
        blocker = next(((c, d) for c, d in different if {find(c), find(d)} == {ra, rb}), None)
        if blocker is not None:
            conflicts.append({"same": [s.a, s.b], "different": list(blocker)})
            continue
        parent[max(ra, rb)] = min(ra, rb)
    members: dict[str, list[str]] = {}
    for x in list(parent):
        members.setdefault(find(x), []).append(x)
    labels = {x: min(group) for group in members.values() for x in group}
    return Groups(labels, conflicts)


def split_groups(labels: dict[str, str], val_fraction: float, seed: int = 0) -> tuple[set[str], set[str]]:
    """(train labels, val labels): a seeded shuffle of the groups, the first `val_fraction` of them to val,
    groups of two or more dealt separately from singletons so both sets get reprints."""
    rng = np.random.default_rng(seed)
    sizes: dict[str, int] = {}
    for label in labels.values():
        sizes[label] = sizes.get(label, 0) + 1
    train, val = set(), set()
    for kind in (sorted(g for g, n in sizes.items() if n > 1), sorted(g for g, n in sizes.items() if n == 1)):
        shuffled = [kind[i] for i in rng.permutation(len(kind))]
        cut = int(round(val_fraction * len(shuffled)))
        val.update(shuffled[:cut])
        train.update(shuffled[cut:])
    return train, val


def export_groups(answers: Sequence[Answer], archive: str, out: str, val_fraction: float = 0.2, seed: int = 0,
                  images: ImagePolicy = ARCHIVE_ONLY) -> dict:
    """Write `out/train` and `out/val` (archives with a label per row, images inline) and `out/groups.json`
    (counts and conflicts); returns that summary.

    archive: the archive the links were built from (images, captions, metadata are copied from it; an
    `image_path` is read under `images` and written inline so the export stands alone).
    Raises BadInput when no Same/Different answer exists or an answered clipping is not in the archive.
    Cost: one pass over the archive, the answered rows in memory.
    """
    groups = answered_groups(answers)
    if not groups.labels:
        raise BadInput(f"export to {out}: no Same or Different answer yet; answer some pairs first")
    wanted = pa.array(sorted(groups.labels), pa.string())
    rows: list[dict] = []
    for part, table in iter_archive_parts(archive):
        for r in table.filter(pc.is_in(table.column("clipping_id"), value_set=wanted)).to_pylist():
            try:
                r["image"] = read_row_image(archive, r["image"], r["image_path"], images)
            except ValueError as e:
                raise BadInput(f"archive {part}: clipping_id {r['clipping_id']!r}: {e}") from e
            r["image_path"] = None
            r["label"] = groups.labels[r["clipping_id"]]
            rows.append({f.name: r.get(f.name) for f in ARCHIVE_SCHEMA})
    missing = sorted(set(groups.labels) - {r["clipping_id"] for r in rows})
    if missing:
        raise BadInput(f"archive {archive}: {len(missing)} answered clipping ids are missing (e.g. {missing[0]!r}); "
                       "give the archive the links were built from")
    train, val = split_groups(groups.labels, val_fraction, seed)
    for name, chosen in (("train", train), ("val", val)):
        part = [r for r in rows if r["label"] in chosen]
        write_dataset(pa.Table.from_pylist(sorted(part, key=lambda r: r["clipping_id"]), schema=ARCHIVE_SCHEMA),
                      join(out, name))
    sizes = groups.sizes()
    summary = {"clippings": len(rows), "groups": int(len(sizes)), "reprint_groups": int((sizes > 1).sum()),
               "train_groups": len(train), "val_groups": len(val), "conflicts": groups.conflicts}
    write_json(join(out, "groups.json"), summary)
    return summary
