"""The label-free rows read no labels: the same figures with every `label` column removed from `unlabelled/`,
`train/` and `val/` (only `test/` keeps its labels, to score)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import pytest

from clippings.cli import main
from clippings.replicate import SCALES, Run, label_free_rows, label_free_stages
from clippings.results_table import LABEL_FREE_ROWS, results_markdown
from clippings.stages import StageRunner
from clippings.storage import read_dataset, write_dataset

pytestmark = pytest.mark.slow


def _copy(src: str, dst: str, keep_labels: bool) -> str:
    table = read_dataset(src, "archive")
    if not keep_labels and "label" in table.column_names:
        table = table.drop(["label"])
    write_dataset(table, dst, rows_per_part=max(1, table.num_rows // 2 + 1))
    return dst


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    """The built-in archive (150 stories, seed 2) twice: as written, and with labels left only in test."""
    from clippings.synth import generate

    root = tmp_path_factory.mktemp("label_free")
    paths = generate(str(root / "synth"), stories=150, seed=2)
    for kind, labelled in (("labelled", True), ("stripped", False)):
        for s in ("unlabelled", "train", "val", "test"):
            _copy(paths[s], str(root / kind / s), labelled or s == "test")
    for s in ("unlabelled", "train", "val"):
        assert "label" not in read_dataset(str(root / "stripped" / s), "archive").column_names
    return {kind: str(root / kind) for kind in ("labelled", "stripped")}


def _rows(data: str, out: str) -> dict[str, dict]:
    run, stages = Run(out, data, replace(SCALES["small"], train_epochs=1)), StageRunner(out, main)
    stages.run_plan(label_free_stages(run, "tiny"))
    return label_free_rows(run, stages.record, "tiny")


def test_label_free_rows_are_the_same_without_labels(archives, ray_local, tmp_path):
    labelled = _rows(archives["labelled"], str(tmp_path / "labelled"))
    stripped = _rows(archives["stripped"], str(tmp_path / "stripped"))
    assert set(labelled) == set(stripped) == set(LABEL_FREE_ROWS)
    for name in LABEL_FREE_ROWS:
        for key in ("ari", "threshold", "im_wt", "auto_refused"):
            assert labelled[name].get(key) == stripped[name].get(key), (name, key)
    mined = [json.loads((tmp_path / kind / "mined" / "mine.json").read_text()) for kind in ("labelled", "stripped")]
    assert mined[0]["counts"] == mined[1]["counts"] and mined[0]["cuts"] == mined[1]["cuts"]
    groups = [read_dataset(str(tmp_path / kind / "mined" / "train"), "archive").sort_by("clipping_id")
              .select(["clipping_id", "label"]) for kind in ("labelled", "stripped")]
    assert groups[0].num_rows > 0 and groups[0].equals(groups[1])
    weights = [hashlib.sha256((tmp_path / kind / "models" / "mined_multimodal" / "model.safetensors").read_bytes())
               .hexdigest() for kind in ("labelled", "stripped")]
    assert weights[0] == weights[1]  # the model trained on mined groups does not see a label either
    # the table shows both rows and the auto-t column
    table = results_markdown({"scale": "small", "archive": "a", "seed": 0, "rows": labelled})
    assert all(f"| {name} |" in table for name in LABEL_FREE_ROWS) and "auto t" in table
