"""The paper's protocol, end to end, as a resumable chain of CLI stages: the ARI table.

Rows (Arora, Yang, Jheng & Dell, table of newspaper image-captions, ARI ×100): Jaccard; self-supervised
visual (w=1), language (w=0), multimodal (w tuned); supervised visual, language, multimodal. Added here:
Pixel cosine (the visual rule baseline beside Jaccard) and the frozen rows (the start model's towers with
no training), the floor that continued pretraining must not fall below. Every row is measured the same
way: tune t (and w where the row says so) on `val`, link `test` at that t, score ARI. `replicate_seeds`
repeats the protocol over seeds and reports mean ± sd per row.

With `label_free`, the rows that read no labels (LABEL_FREE_ROWS) are added: "Label-free multimodal" links
the self-supervised model's `test` embeddings at the auto t and w (`link --threshold auto`,
clippings.link.auto); "Mined multimodal" trains the self-supervised model with SupCon on groups mined from
`unlabelled` (`clippings mine`, with `val` mined too: pseudo-labels only) and links at the auto t and w.
Every embedding row also gets its test ARI at the auto t (at the row's own w) beside the val-tuned t. Only
`test`'s labels are read, to score. Where the auto cut refuses (no clear valley), the row says so.

Each stage is a `clippings` subcommand writing into `out/`; a stage's success is recorded in
`out/stages.json` after it finishes, with its command line (and a given archive's fingerprint), so a re-run
with the same settings skips finished stages instead of recomputing them; one that asks a finished stage
for other settings is refused (`StageRunner`), or with `overwrite` runs every stage afresh.
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from clippings.archive import (
    ARCHIVE_ONLY,
    ImagePolicy,
    exists,
    join,
    read_json,
    remove_tree,
    write_bytes_atomic,
    write_json,
)
from clippings.errors import BadInput
from clippings.logs import DETAIL
from clippings.settings import check_settings, dataset_fingerprint

log = logging.getLogger("clippings.replicate")

ROWS = (
    "Jaccard",
    "Pixel cosine",
    "Frozen visual",
    "Frozen language",
    "Frozen multimodal",
    "Self-supervised visual",
    "Self-supervised language",
    "Self-supervised multimodal",
    "Supervised visual",
    "Supervised language",
    "Supervised multimodal",
)

LABEL_FREE_ROWS = ("Label-free multimodal", "Mined multimodal")
"""Rows that read no labels but `test`'s, to score (`replicate(label_free=True)`)."""
AFTER_MINED_TRAINING = ("embed-mined-test", "link-mined", "evaluate-mined")
"""The stages of the mined row after its training (`label_free_rows`): none runs when the training refuses."""

PAPER_ARI = {
    "Jaccard": 40.3,
    "Self-supervised visual": 40.7,
    "Self-supervised language": 31.0,
    "Self-supervised multimodal": 43.0,
    "Supervised visual": 59.7,
    "Supervised language": 38.9,
    "Supervised multimodal": 61.5,
}


@dataclass(frozen=True)
class Scale:
    """Sizes and settings of one replication scale."""

    stories: int
    model: str
    pretrain_epochs: int
    train_epochs: int
    batch_size: int
    workers: int = 1
    text_train_epochs: int | None = None  # SupCon epochs of the rows that train the text tower (None: same)
    pretrain_text_lr: float | None = None  # text encoder rate in pretraining (0: locked); None: the head rate
    view_weight: float = 0.0  # pretraining's image-image view term (clippings.train.views); 0: plain CLIP
    clip_weight: float = 1.0  # pretraining's CLIP term; 0 (with view_weight > 0): the image tower learns from views
    train_text_lr: float | None = None  # text encoder rate in SupCon; None: the head rate
    extra_train: tuple[str, ...] = field(default_factory=tuple)

    def lr_argv(self, stage: str) -> list[str]:
        """The encoder learning-rate flags of `stage` ('pretrain' or 'train') that this scale sets."""
        rate = self.pretrain_text_lr if stage == "pretrain" else self.train_text_lr
        return [] if rate is None else ["--text-lr", repr(rate)]

    def epochs(self, im_wt: float) -> int:
        """SupCon epochs of a row with image weight `im_wt` (w < 1 trains the text tower)."""
        return self.train_epochs if im_wt == 1.0 or self.text_train_epochs is None else self.text_train_epochs


SCALES = {
    # the built-in archive's default size, within the demo budget on 2 CPU cores: tiny CLIP, a few epochs
    "small": Scale(stories=2000, model="tiny", pretrain_epochs=8, train_epochs=12, batch_size=64),
    # the built-in pretrained model (MiniLM text tower + one-patch image tower): pretraining locks the text
    # tower and trains the image tower on re-scanned views alone (no CLIP term: chosen on val,
    # docs/training.md#keeping-the-image-towers-own-view); SupCon fine-tunes the text tower at a low rate for
    # 1 epoch (~45 captions/s on 2 CPU cores)
    "medium": Scale(stories=2000, model="minilm", pretrain_epochs=4, train_epochs=12, batch_size=64,
                    text_train_epochs=1, pretrain_text_lr=0.0, view_weight=1.0, clip_weight=0.0,
                    train_text_lr=2e-5),
    # the paper's settings: ViT-B/32 CLIP (hub; needs a connection or a local copy), m=3, k=3, τ=0.1, w=0.5
    "paper": Scale(stories=20000, model="openai/clip-vit-base-patch32", pretrain_epochs=10, train_epochs=20,
                   batch_size=153),
}


RESUMING_COMMANDS = ("pretrain", "train", "embed")
"""Stage commands that resume earlier work in their own output; `StageRunner(overwrite=True)` passes them
--overwrite, so a fresh replication recomputes them too."""


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

    def run(self, name: str, argv: list[str], refusable: bool = False) -> bool:
        """Run `clippings <argv>` unless `name` finished before with the same settings; raise on failure or
        when it finished with other settings. refusable: a refusal of the command (exit 2, its reason on
        the console and in the log) is an outcome, recorded as the stage's and returned as False, not an
        error (the label-free cut refuses where it sees no clear valley). Returns True when it ran through."""
        entry = {"argv": argv, **({"inputs": self.inputs} if self.inputs else {})}
        if name in self.record:
            check_settings(stage_settings(self.record[name]), stage_settings(entry),
                           f"replicate {self.out}: stage {name!r}", "--out")
            log.info("%s: done before, skipped", name)
            return not self.record[name].get("refused", False)
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
        return not refused


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


TUNE_FLAGS = {"visual": ["--im-wt", "1.0"], "language": ["--im-wt", "0.0"], "multimodal": ["--search-im-wt"]}
"""How each embedding row is tuned on val: image only, text only, or w chosen with t."""
SPLITS = ("unlabelled", "train", "val", "test")
"""The splits of a replication archive (`clippings synth` writes them)."""
SUPERVISED_IM_WT = {"visual": "1.0", "language": "0.0", "multimodal": "0.5"}
"""The image weight each supervised row trains with (its SupCon loss sees w·img + (1−w)·txt)."""


def _tuned_rows(only: str | None) -> list[str]:
    return [row for row in TUNE_FLAGS if only is None or row == only]


def _embed_score_stages(name: str, only: str | None = None, label_free: bool = False) -> list[str]:
    """The stages `_embed_score` runs for model `name`: embed val and test, then tune, link, evaluate per row
    (and with `label_free`, link and evaluate at the auto t)."""
    names = [f"embed-{name}-val", f"embed-{name}-test"]
    for row in _tuned_rows(only):
        names += [f"tune-{name}-{row}", f"link-{name}-{row}", f"evaluate-{name}-{row}"]
        if label_free:
            names += [f"link-{name}-{row}-auto", f"evaluate-{name}-{row}-auto"]
    return names


def planned_stages(built_in: bool, label_free: bool = False) -> list[str]:
    """Every stage `replicate` runs, in order (with the built-in archive, `synth` first): what `clippings
    status` reports against. Kept beside `replicate`, whose stage names it must follow (tests/test_demo.py
    checks that a finished demo has none left). A refused stage counts as finished."""
    names = ["synth"] if built_in else []
    names += ["jaccard", "jaccard-evaluate", "pixels", "pixels-evaluate",
              *_embed_score_stages("frozen", label_free=label_free)]
    names += ["pretrain", *_embed_score_stages("selfsup", label_free=label_free)]
    for row in SUPERVISED_IM_WT:
        names += [f"train-{row}", *_embed_score_stages(f"supervised_{row}", only=row, label_free=label_free)]
    if label_free:
        names += ["link-label_free", "evaluate-label_free", "mine", "train-mined", *AFTER_MINED_TRAINING]
    return names


def skipped_by_refusals(record: Mapping[str, dict]) -> set[str]:
    """Planned stages that never run because a stage before them was refused (`StageRunner.run(refusable)`):
    a refused auto link leaves its evaluate, a refused training on mined groups the rest of its row."""
    skipped = set()
    for name, entry in record.items():
        if entry.get("refused") and name.startswith("link-"):
            skipped.add("evaluate-" + name[len("link-"):])
        if entry.get("refused") and name == "train-mined":
            skipped |= set(AFTER_MINED_TRAINING)
    return skipped


def _metrics(links_dir: str) -> dict:
    return read_json(join(links_dir, "metrics.json"))


def _tuned(tune_dir: str) -> dict:
    return read_json(join(tune_dir, "tune.json"))


def replicate(out: str, scale: str = "small", archive: str | None = None, seed: int = 0,
              cli_main: Callable[[list[str]], int] | None = None, images: ImagePolicy = ARCHIVE_ONLY,
              overwrite: bool = False, label_free: bool = False, **overrides: int) -> dict:
    """Run the protocol (every row of ROWS) into `out/` and return the results (also in results.json/.md).

    archive: a folder holding labelled `train`, `val`, `test` and an `unlabelled` split (the built-in
    archive is generated into `out/data` when None; a given one's part files are fingerprinted, so a
    re-run on changed data does not skip stages made from the old). overrides: Scale fields to change
    (stories, pretrain_epochs, train_epochs, batch_size, workers); None values are ignored. images: which
    image paths outside the split folders the stages that read images (pretrain, train, embed) may read.
    overwrite: run every stage afresh instead of skipping finished ones (`StageRunner`). label_free: add
    LABEL_FREE_ROWS and each embedding row's test ARI at the auto t (module docstring); costs one mining,
    one SupCon training and a link per row more. Cost at `small` without it: ≤ 10 minutes on 2 CPU cores.
    """
    if cli_main is None:
        from clippings.cli import main as cli_main
    settings = replace(SCALES[scale], **{k: v for k, v in overrides.items() if v is not None})
    inputs = {} if archive is None else {s: dataset_fingerprint(join(archive, s), s) for s in SPLITS}
    stages = StageRunner(out, cli_main, inputs, overwrite)
    data = archive or join(out, "data")
    if archive is None:
        stages.run("synth", ["synth", "--out", data, "--stories", str(settings.stories), "--seed", str(seed)])
    split = {name: join(data, name) for name in SPLITS}
    rows: dict[str, dict] = {}

    # Jaccard: n and overlap tuned on val inside the baseline command
    jaccard = join(out, "links", "jaccard")
    stages.run("jaccard", ["baseline", "--archive", split["test"], "--val", split["val"], "--out", jaccard])
    stages.run("jaccard-evaluate", ["evaluate", "--links", jaccard, "--archive", split["test"]])
    rows["Jaccard"] = {"ari": _metrics(jaccard)["ari"], "links": jaccard, **_baseline_choice(jaccard)}
    pixels = join(out, "links", "pixels")
    stages.run("pixels", ["baseline", "--method", "pixels", "--archive", split["test"], "--val", split["val"],
                          "--out", pixels, *images.argv()])
    stages.run("pixels-evaluate", ["evaluate", "--links", pixels, "--archive", split["test"]])
    rows["Pixel cosine"] = {"ari": _metrics(pixels)["ari"], "im_wt": 1.0, "links": pixels,
                            **_baseline_choice(pixels)}
    _embed_score(stages, out, "frozen", settings.model, split, rows, prefix="Frozen", images=images,
                 label_free=label_free)

    selfsup = join(out, "models", "selfsup")
    stages.run("pretrain", ["pretrain", "--archive", split["unlabelled"], "--out", selfsup,
                            "--model", settings.model, "--epochs", str(settings.pretrain_epochs),
                            "--batch-size", str(settings.batch_size), "--workers", str(settings.workers),
                            "--seed", str(seed), "--view-weight", repr(settings.view_weight),
                            "--clip-weight", repr(settings.clip_weight),
                            *settings.lr_argv("pretrain"), *images.argv()])
    _embed_score(stages, out, "selfsup", selfsup, split, rows, prefix="Self-supervised", images=images,
                 label_free=label_free)

    for row, im_wt in SUPERVISED_IM_WT.items():
        model = join(out, "models", f"supervised_{row}")
        stages.run(f"train-{row}", ["train", "--archive", split["train"], "--val", split["val"], "--out", model,
                                    "--model", selfsup, "--im-wt", im_wt,
                                    "--epochs", str(settings.epochs(float(im_wt))),
                                    "--workers", str(settings.workers), "--seed", str(seed),
                                    *settings.lr_argv("train"), *settings.extra_train, *images.argv()])
        _embed_score(stages, out, f"supervised_{row}", model, split, rows, prefix="Supervised", only=row,
                     images=images, label_free=label_free)
    if label_free:
        rows.update(label_free_rows(stages, out, selfsup, split, settings, seed, images))

    results = {"scale": scale, "settings": asdict(settings), "archive": data, "seed": seed, "rows": rows,
               "paper_ari": PAPER_ARI, "stage_seconds": {k: v["seconds"] for k, v in stages.record.items()}}
    write_json(join(out, "results.json"), results)
    write_bytes_atomic(join(out, "results.md"), results_markdown(results).encode())
    return results


def _auto_link(stages: StageRunner, name: str, embeddings: str, links: str, test: str,
               im_wt: float | None = None) -> dict:
    """Link `embeddings` at the auto t (and w, unless `im_wt` fixes it) and score it on `test`: the fields a
    row keeps (auto_ari, auto_threshold, auto_im_wt), or auto_refused where the cut saw no clear valley."""
    argv = ["link", "--embeddings", embeddings, "--out", links, "--threshold", "auto"]
    if not stages.run(f"link-{name}", [*argv, *([] if im_wt is None else ["--im-wt", repr(im_wt)])],
                      refusable=True):
        return {"auto_refused": True}
    stages.run(f"evaluate-{name}", ["evaluate", "--links", links, "--archive", test])
    cut = read_json(join(links, "links.json"))["auto"]
    return {"auto_ari": _metrics(links)["ari"], "auto_threshold": cut["threshold"], "auto_im_wt": cut["im_wt"],
            "auto_links": links}


def label_free_rows(stages: StageRunner, out: str, selfsup: str, split: Mapping[str, str], settings: Scale,
                    seed: int = 0, images: ImagePolicy = ARCHIVE_ONLY) -> dict[str, dict]:
    """LABEL_FREE_ROWS: the self-supervised model `selfsup` at the auto t and w, and SupCon on groups mined
    from `unlabelled` with it (multimodal, w = 0.5 in training as the supervised row), linked at the auto t
    and w. Reads no labels but `split["test"]`'s; `split["val"]` is not read. Returns the rows by name."""
    rows = {}
    emb = join(out, "embeddings", "selfsup", "test")
    stages.run("embed-selfsup-test", _embed_argv(split["test"], selfsup, emb, images))  # done before in replicate
    auto = _auto_link(stages, "label_free", emb, join(out, "links", "label_free"), split["test"])
    rows["Label-free multimodal"] = _auto_row(auto, selfsup)
    mined = join(out, "mined")
    stages.run("mine", ["mine", "--archive", split["unlabelled"], "--model", selfsup, "--out", mined,
                        "--seed", str(seed), *images.argv()])
    model = join(out, "models", "mined_multimodal")
    im_wt = SUPERVISED_IM_WT["multimodal"]
    train = ["train", "--archive", join(mined, "train"), "--val", join(mined, "val"), "--out", model, "--model",
             selfsup, "--im-wt", im_wt, "--epochs", str(settings.epochs(float(im_wt))), "--workers",
             str(settings.workers), "--seed", str(seed), *settings.lr_argv("train"), *settings.extra_train,
             *images.argv()]
    trained = stages.run("train-mined", train, refusable=True)  # refused e.g. with too few mined groups
    if not trained:
        rows["Mined multimodal"] = _auto_row({"auto_refused": True}, model)
        return rows
    emb = join(out, "embeddings", "mined_multimodal", "test")
    stages.run("embed-mined-test", _embed_argv(split["test"], model, emb, images))
    auto = _auto_link(stages, "mined", emb, join(out, "links", "mined_multimodal"), split["test"])
    rows["Mined multimodal"] = _auto_row(auto, model)
    return rows


def _embed_argv(archive: str, model: str, out: str, images: ImagePolicy) -> list[str]:
    return ["embed", "--archive", archive, "--model", model, "--out", out, *images.argv()]


def _auto_row(auto: dict, model: str) -> dict:
    """A label-free row: its ARI, t and w are the auto cut's (None where it refused)."""
    return {"ari": auto.get("auto_ari"), "threshold": auto.get("auto_threshold"), "im_wt": auto.get("auto_im_wt"),
            "links": auto.get("auto_links"), "model": model, **auto}


def _baseline_choice(links_dir: str) -> dict:
    info = read_json(join(links_dir, "links.json"))
    return {key: info.get(key) for key in ("n", "overlap", "threshold", "val_ari") if key in info}


def _embed_score(stages: StageRunner, out: str, name: str, model: str, split: dict, rows: dict, prefix: str,
                 only: str | None = None, images: ImagePolicy = ARCHIVE_ONLY, label_free: bool = False) -> None:
    """Embed val and test with `model`, tune on val, link test at the tuned t, score test ARI (and with
    `label_free`, at the auto t with the tuned w)."""
    emb = {s: join(out, "embeddings", name, s) for s in ("val", "test")}
    for s in ("val", "test"):
        stages.run(f"embed-{name}-{s}", _embed_argv(split[s], model, emb[s], images))
    for row in _tuned_rows(only):
        tune_dir = join(out, "tune", f"{name}_{row}")
        stages.run(f"tune-{name}-{row}", ["tune", "--embeddings", emb["val"], "--archive", split["val"],
                                          *TUNE_FLAGS[row], "--out", tune_dir])
        choice = _tuned(tune_dir)
        links = join(out, "links", f"{name}_{row}")
        stages.run(f"link-{name}-{row}", ["link", "--embeddings", emb["test"], "--out", links,
                                          "--threshold", repr(choice["threshold"]),
                                          "--im-wt", repr(choice["im_wt"])])
        stages.run(f"evaluate-{name}-{row}", ["evaluate", "--links", links, "--archive", split["test"]])
        rows[f"{prefix} {row}"] = {
            "ari": _metrics(links)["ari"],
            "threshold": choice["threshold"],
            "im_wt": choice["im_wt"],
            "val_ari": choice.get("ari"),
            "links": links,
            "model": model,
            "tune": tune_dir,
        }
        if label_free:
            rows[f"{prefix} {row}"].update(_auto_link(stages, f"{name}-{row}-auto", emb["test"],
                                                      join(out, "links", f"{name}_{row}_auto"), split["test"],
                                                      im_wt=choice["im_wt"]))


def _cell(value: float | None, fmt: str) -> str:
    return "" if value is None else format(value, fmt)


def _has_auto(rows: Mapping[str, dict]) -> bool:
    return any("auto_ari" in row or "auto_refused" in row for row in rows.values())


def _auto_cell(row: dict, value: str) -> str:
    return " refused |" if row.get("auto_refused") else f" {value} |"


def results_markdown(results: dict) -> str:
    """The table as Markdown: measured test ARI ×100 (and val ARI where tuned) beside the paper's, with the
    chosen t and w; with the label-free rows, each row's test ARI at the auto t and that t ("refused" where
    the auto cut saw no clear valley)."""
    auto = _has_auto(results["rows"])
    lines = [
        f"# Replication ({results['scale']} scale, archive {results['archive']}, seed {results['seed']})",
        "",
        "| Method | ARI ×100 (test) | ARI ×100 (val) | ARI ×100 (paper) | threshold t | w (image weight) |"
        + (" ARI ×100 (test, auto t) | auto t |" if auto else ""),
        "|---|---:|---:|---:|---:|---:|" + ("---:|---:|" if auto else ""),
    ]
    for name in (*ROWS, *LABEL_FREE_ROWS):
        row = results["rows"].get(name)
        if row is None:
            continue
        ari, val, auto_ari = row.get("ari"), row.get("val_ari"), row.get("auto_ari")
        line = (f"| {name} | {_cell(None if ari is None else 100 * ari, '.1f')} | "
                f"{_cell(None if val is None else 100 * val, '.1f')} | {_cell(PAPER_ARI.get(name), '.1f')} | "
                f"{_cell(row.get('threshold'), '.4f')} | {_cell(row.get('im_wt'), '.2f')} |")
        if auto:
            line += (_auto_cell(row, _cell(None if auto_ari is None else 100 * auto_ari, ".1f"))
                     + _auto_cell(row, _cell(row.get("auto_threshold"), ".4f")))
        lines.append(line)
    return "\n".join(lines) + "\n"


def replicate_seeds(out: str, seeds: int, scale: str = "small", **kwargs) -> dict:
    """Run `replicate` for seeds 0..seeds−1 (training seed and, for the built-in archive, archive seed) into
    `out/seed-<s>/` and write the mean ± sample sd of each row's ARI to `out/results.{json,md}`.

    One seed is the plain `replicate` into `out/`. Cost: `seeds` times one replication; resumable per seed.
    """
    if seeds == 1:
        return replicate(out, scale=scale, **kwargs)
    kwargs.pop("seed", None)
    runs = [replicate(join(out, f"seed-{s}"), scale=scale, seed=s, **kwargs) for s in range(seeds)]
    results = {"scale": scale, "seeds": seeds, "settings": runs[0]["settings"],
               "archives": [run["archive"] for run in runs], "rows": summarise_seeds(runs),
               "paper_ari": PAPER_ARI, "stage_seconds": [run["stage_seconds"] for run in runs]}
    write_json(join(out, "results.json"), results)
    write_bytes_atomic(join(out, "results.md"), seeds_markdown(results).encode())
    return results


def summarise_seeds(runs: list[dict]) -> dict[str, dict]:
    """Per row, the mean, sample sd and values of test ARI (`ari`), `val_ari` and the test ARI at the auto t
    (`auto_ari`) over the runs that have it; `auto_refused`: in how many runs the auto cut refused."""
    summary: dict[str, dict] = {}
    for name in (*ROWS, *LABEL_FREE_ROWS):
        refused = sum(1 for run in runs if run["rows"].get(name, {}).get("auto_refused"))
        if refused:
            summary.setdefault(name, {})["auto_refused"] = refused
        for key in ("ari", "val_ari", "auto_ari"):
            values = [run["rows"][name][key] for run in runs
                      if name in run["rows"] and run["rows"][name].get(key) is not None]
            if values:
                summary.setdefault(name, {})[key] = {
                    "mean": float(statistics.fmean(values)),
                    "sd": float(statistics.stdev(values)) if len(values) > 1 else 0.0,
                    "values": values,
                }
    return summary


def seeds_markdown(results: dict) -> str:
    """The multi-seed table: mean ± sd of test and val ARI ×100 per row, beside the paper's figure."""
    auto = _has_auto(results["rows"])
    lines = [
        f"# Replication ({results['scale']} scale, {results['seeds']} seeds: mean ± sd)",
        "",
        "| Method | ARI ×100 (test) | ARI ×100 (val) | ARI ×100 (paper) |" + (" ARI ×100 (test, auto t) |" if auto
                                                                              else ""),
        "|---|---:|---:|---:|" + ("---:|" if auto else ""),
    ]

    def spread(stats: dict | None) -> str:
        return "" if stats is None else f"{100 * stats['mean']:.1f} ± {100 * stats['sd']:.1f}"

    for name in (*ROWS, *LABEL_FREE_ROWS):
        row = results["rows"].get(name)
        if row is None:
            continue
        line = (f"| {name} | {spread(row.get('ari'))} | {spread(row.get('val_ari'))} | "
                f"{_cell(PAPER_ARI.get(name), '.1f')} |")
        if auto:
            refused = f" (refused in {row['auto_refused']} of {results['seeds']})" if row.get("auto_refused") else ""
            line += f" {spread(row.get('auto_ari'))}{refused} |"
        lines.append(line)
    return "\n".join(lines) + "\n"


def print_table(results: dict) -> None:
    if "seeds" in results:
        print(seeds_markdown(results))
        return
    print(results_markdown(results))
    print(json.dumps({k: None if v.get("ari") is None else round(v["ari"], 4) for k, v in results["rows"].items()}))
