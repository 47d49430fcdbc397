"""The answers file: one JSON line per answer or undo, appended and synced at once, read back on restart.

`answers.jsonl` in the label folder holds records in the order they were given:
`{"kind": "answer", "seq": 7, "a": id, "b": id, "distance": 0.21, "answer": "same", "reason": "below",
"joins": 12, ...}`
and `{"kind": "undo", "seq": 8, "undoes": 7}`. An undo takes back the latest answer still in force, so the
answers in force are a stack replayed from the file. Each record is written with one `write` of a whole line
and `fsync`ed before the page hears back, so a killed server loses at most the answer it was writing, and a
torn last line (no newline) is cut off when the file is opened again. A pair (unordered) is never answered
twice while an earlier answer to it is in force: `AnswerLog.add` refuses it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass

from clippings.errors import BadInput

ANSWERS = "answers.jsonl"
CHOICES = ("same", "different", "unsure")


def pair_key(a: str, b: str) -> tuple[str, str]:
    """The unordered pair (a, b) in one spelling: the smaller id first."""
    return (a, b) if a <= b else (b, a)


@dataclass(frozen=True)
class Answer:
    """One answer in force: the pair's clipping ids, its distance in the links folder it was asked from, the
    choice (one of CHOICES), why the pair was asked (a selection slot: below, above, largest, random) and
    the record's sequence number in the file. joins: how many clipping pairs the pair's MST edge joins in
    the links folder it was asked from (clippings.link.slink.joined_pairs), its weight when t is fitted; 1 in
    files written before it was recorded, which then count one vote per answer."""

    seq: int
    a: str
    b: str
    distance: float
    answer: str
    reason: str
    joins: int = 1

    @property
    def key(self) -> tuple[str, str]:
        return pair_key(self.a, self.b)


def _parse(text: str, where: str) -> tuple[list[Answer], int, int]:
    """(answers in force, next seq, byte length of the whole lines) of a file's text. A last line without
    its newline is a torn write and is ignored."""
    stack: list[Answer] = []
    seq = 0
    lines = text.split("\n")
    complete = len(text) - len(lines[-1])
    lines = lines[:-1]
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            kind = record["kind"]
            seq = max(seq, int(record["seq"]) + 1)
            if kind == "answer":
                if record["answer"] not in CHOICES:
                    raise ValueError(f"answer {record['answer']!r} is not one of {', '.join(CHOICES)}")
                stack.append(Answer(int(record["seq"]), str(record["a"]), str(record["b"]),
                                    float(record["distance"]), record["answer"], str(record.get("reason", "")),
                                    int(record.get("joins", 1))))
            elif kind == "undo":
                if not stack or stack[-1].seq != int(record["undoes"]):
                    raise ValueError(f"undo of record {record['undoes']} that is not the latest answer in force")
                stack.pop()
            else:
                raise ValueError(f"unknown kind {kind!r}")
        except (ValueError, KeyError, TypeError) as e:
            raise BadInput(f"answers {where}: line {number} is not an answer or undo record ({e}); "
                           "the file is written only by 'clippings label': restore it or start a new --out") from e
    return stack, seq, len(text[:complete].encode())


def read_answers(folder: str) -> list[Answer]:
    """The answers in force in a label folder (local or s3://), oldest first; a torn last line is ignored.

    Raises BadInput when the folder holds no answers file or a line is not a record.
    """
    from clippings.storage import join, read_bytes

    path = join(folder, ANSWERS)
    try:
        text = read_bytes(path).decode("utf-8")
    except FileNotFoundError as e:
        raise BadInput(f"pairs {folder}: no {ANSWERS}; give the --out folder of 'clippings label'") from e
    return _parse(text, path)[0]


class AnswerLog:
    """The answers file of a local label folder, open for appending; `answers` are those in force.

    Opening reads the file back (O(records)), cuts a torn last line and keeps the answers in memory; each
    `add` or `undo` appends one line and fsyncs it (one disk sync per answer: a few milliseconds).
    """

    def __init__(self, folder: str):
        os.makedirs(folder, exist_ok=True)
        self.path = os.path.join(folder, ANSWERS)
        text = ""
        if os.path.exists(self.path):
            with open(self.path, encoding="utf-8") as f:
                text = f.read()
        self.answers, self._seq, complete = _parse(text, self.path)
        if complete != len(text.encode()):
            with open(self.path, "r+b") as f:  # a torn last line: cut it so the next record starts a line
                f.truncate(complete)
        self._keys = {a.key for a in self.answers}

    def answered(self, a: str, b: str) -> bool:
        """Whether an answer to the pair (either order) is in force."""
        return pair_key(a, b) in self._keys

    def _append(self, record: dict) -> None:
        line = json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        self._seq += 1

    def add(self, a: str, b: str, distance: float, answer: str, reason: str, joins: int = 1) -> Answer:
        """Append an answer; ValueError when `answer` is not a choice or the pair is already answered."""
        if answer not in CHOICES:
            raise ValueError(f"answer must be one of {', '.join(CHOICES)}, not {answer!r}")
        if self.answered(a, b):
            raise ValueError(f"the pair {a!r}, {b!r} is already answered")
        entry = Answer(self._seq, a, b, float(distance), answer, reason, int(joins))
        self._append({"kind": "answer", **asdict(entry), "at": round(time.time(), 3)})
        self.answers.append(entry)
        self._keys.add(entry.key)
        return entry

    def undo(self) -> Answer | None:
        """Take back the latest answer in force (appending an undo record); None when there is none."""
        if not self.answers:
            return None
        last = self.answers[-1]
        self._append({"kind": "undo", "seq": self._seq, "undoes": last.seq, "at": round(time.time(), 3)})
        self.answers.pop()
        self._keys.discard(last.key)
        return last
