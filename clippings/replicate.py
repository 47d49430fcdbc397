"""The paper's protocol, end to end, as one resumable plan of CLI stages: the ARI table (`results_table`).

Every row is measured the same way: tune t (and w where the row says so) on `val`, link `test` at that t,
score ARI. `replicate_seeds` repeats the protocol over seeds and reports mean ± sd per row.

With `label_free`, the rows that read no labels (LABEL_FREE_ROWS) are added: "Label-free multimodal" links
the self-supervised model's `test` embeddings at the auto t and w (`link --threshold auto`,
clippings.link.auto); "Mined multimodal" trains the self-supervised model with SupCon on groups mined from
`unlabelled` (`clippings mine`, with `val` mined too: pseudo-labels only) and links at the auto t and w.
Every embedding row also gets its test ARI at the auto t (at the row's own w) beside the val-tuned t. Only
`test`'s labels are read, to score. Where the auto cut refuses (no clear valley), the row says so.

The stages are one list (`stage_plan`) that `replicate` and `demo` run and `status` reads; each is a
`clippings` subcommand writing into `out/`, recorded in `out/stages.json` when it finishes
(`clippings.stages.StageRunner`), so a re-run with the same settings skips finished stages and one that asks
a finished stage for other settings is refused. The rows are read from the stages' outputs afterwards
(`collect_rows`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from functools import partial

from clippings.errors import BadInput
from clippings.image_paths import ARCHIVE_ONLY, ImagePolicy
from clippings.results_table import (
    PAPER_ARI,
    multimodal_choice,
    results_markdown,
    seeds_markdown,
    summarise_seeds,
)
from clippings.settings import dataset_fingerprint
from clippings.stages import Stage, StageRunner
from clippings.storage import join, read_json, write_bytes_atomic, write_json


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


TUNE_FLAGS = {"visual": ["--im-wt", "1.0"], "language": ["--im-wt", "0.0"], "multimodal": ["--search-im-wt"]}
"""How each embedding row is tuned on val: image only, text only, or w chosen with t."""
SPLITS = ("unlabelled", "train", "val", "test")
"""The splits of a replication archive (`clippings synth` writes them)."""
SUPERVISED_IM_WT = {"visual": "1.0", "language": "0.0", "multimodal": "0.5"}
"""The image weight each supervised row trains with (its SupCon loss sees w·img + (1−w)·txt)."""
BEST_ROW = "Supervised multimodal"
"""The row whose links the demo's report shows."""
BUILT_IN_DIFFICULTY = "mild"
"""The built-in archive's difficulty in the demo and the README's table (`clippings synth --difficulty`):
the archive those tables were measured on; `--difficulty hard` measures the harder one."""
LATE_FUSION = "late_fusion"
"""The name of the "Supervised late fusion" row's stages and folders (`_late_fusion_stages`)."""


@dataclass(frozen=True)
class Run:
    """Where one replication reads (`data/<split>`) and writes (`out/`), and the settings its stages carry."""

    out: str
    data: str
    settings: Scale
    seed: int = 0
    images: ImagePolicy = ARCHIVE_ONLY
    difficulty: str = BUILT_IN_DIFFICULTY

    def split(self, name: str) -> str:
        return join(self.data, name)

    def path(self, *parts: str) -> str:
        return join(self.out, *parts)

    def embed_argv(self, split: str, model: str, name: str) -> list[str]:
        """Embed `split` with `model` into embeddings/<name>/<split>."""
        return ["embed", "--archive", self.split(split), "--model", model, "--out",
                self.path("embeddings", name, split), *self.images.argv()]

    def train_argv(self, archive: str, val: str, model: str, start: str, im_wt: str) -> list[str]:
        """SupCon training of `start` on `archive` (`val` to choose the epoch) with image weight `im_wt`."""
        s = self.settings
        return ["train", "--archive", archive, "--val", val, "--out", model, "--model", start, "--im-wt", im_wt,
                "--epochs", str(s.epochs(float(im_wt))), "--workers", str(s.workers), "--seed", str(self.seed),
                *s.lr_argv("train"), *s.extra_train, *self.images.argv()]


def _argv(*argv: str) -> Callable[[], list[str]]:
    """A stage's command line that reads nothing the stages before it write."""
    return partial(list, argv)


def _tuned(tune_dir: str) -> dict:
    return read_json(join(tune_dir, "tune.json"))


def _metrics(links_dir: str) -> dict:
    return read_json(join(links_dir, "metrics.json"))


def _link_at_tuned(embeddings: str, links: str, tune_dir: str) -> list[str]:
    choice = _tuned(tune_dir)
    return ["link", "--embeddings", embeddings, "--out", links, "--threshold", repr(choice["threshold"]),
            "--im-wt", repr(choice["im_wt"])]


def _link_auto(embeddings: str, links: str, tune_dir: str | None) -> list[str]:
    """Link at the auto t: at the w tuned in `tune_dir`, or with w chosen too (None)."""
    im_wt = [] if tune_dir is None else ["--im-wt", repr(_tuned(tune_dir)["im_wt"])]
    return ["link", "--embeddings", embeddings, "--out", links, "--threshold", "auto", *im_wt]


def _tuned_rows(only: str | None) -> list[str]:
    return [row for row in TUNE_FLAGS if only is None or row == only]


def _auto_stages(run: Run, name: str, embeddings: str, links: str, tune_dir: str | None,
                 needs: str | None = None) -> list[Stage]:
    """Link `embeddings` at the auto t (refusable; only once stage `needs` ran through) and score it on
    `test`."""
    return [Stage(f"link-{name}", partial(_link_auto, embeddings, links, tune_dir), refusable=True, needs=needs),
            Stage(f"evaluate-{name}", _argv("evaluate", "--links", links, "--archive", run.split("test")),
                  needs=f"link-{name}")]


def _score_stages(run: Run, name: str, only: str | None, label_free: bool) -> list[Stage]:
    """Tune each row of embeddings/<name> on val, link test at the tuned t, score test ARI (and with
    `label_free`, at the auto t with the tuned w)."""
    emb = {s: run.path("embeddings", name, s) for s in ("val", "test")}
    stages = []
    for row in _tuned_rows(only):
        tune_dir, links = run.path("tune", f"{name}_{row}"), run.path("links", f"{name}_{row}")
        stages += [
            Stage(f"tune-{name}-{row}", _argv("tune", "--embeddings", emb["val"], "--archive", run.split("val"),
                                              *TUNE_FLAGS[row], "--out", tune_dir)),
            Stage(f"link-{name}-{row}", partial(_link_at_tuned, emb["test"], links, tune_dir)),
            Stage(f"evaluate-{name}-{row}", _argv("evaluate", "--links", links, "--archive", run.split("test"))),
        ]
        if label_free:
            stages += _auto_stages(run, f"{name}-{row}-auto", emb["test"], run.path("links", f"{name}_{row}_auto"),
                                   tune_dir)
    return stages


def _embed_score_stages(run: Run, name: str, model: str, only: str | None, label_free: bool) -> list[Stage]:
    """Embed val and test with `model` into embeddings/<name>, then `_score_stages`."""
    return [*(Stage(f"embed-{name}-{s}", _argv(*run.embed_argv(s, model, name))) for s in ("val", "test")),
            *_score_stages(run, name, only, label_free)]


def _late_fusion_stages(run: Run, label_free: bool) -> list[Stage]:
    """LATE_FUSION: the supervised visual row's image vectors beside the supervised language row's text
    vectors (`clippings fuse`), scored as a multimodal row (w and t tuned on val)."""
    return [*(Stage(f"fuse-{LATE_FUSION}-{s}", _argv(
                "fuse", "--image-embeddings", run.path("embeddings", "supervised_visual", s), "--text-embeddings",
                run.path("embeddings", "supervised_language", s), "--out", run.path("embeddings", LATE_FUSION, s)))
              for s in ("val", "test")),
            *_score_stages(run, LATE_FUSION, "multimodal", label_free)]


def label_free_stages(run: Run, selfsup: str, embed_test: bool = True) -> list[Stage]:
    """LABEL_FREE_ROWS' stages: the self-supervised model `selfsup` at the auto t and w, and SupCon on groups
    mined from `unlabelled` with it (multimodal, w = 0.5 in training as the supervised row), linked at the
    auto t and w. Reads no labels but `test`'s; `val` is not read. embed_test: embed `test` with `selfsup`
    first (the replication has done it already)."""
    emb = run.path("embeddings", "selfsup", "test")
    mined, model = run.path("mined"), run.path("models", "mined_multimodal")
    stages = [Stage("embed-selfsup-test", _argv(*run.embed_argv("test", selfsup, "selfsup")))] if embed_test else []
    stages += _auto_stages(run, "label_free", emb, run.path("links", "label_free"), None)
    stages += [
        Stage("mine", _argv("mine", "--archive", run.split("unlabelled"), "--model", selfsup, "--out", mined,
                            "--seed", str(run.seed), *run.images.argv())),
        # refused e.g. with too few mined groups
        Stage("train-mined", _argv(*run.train_argv(join(mined, "train"), join(mined, "val"), model, selfsup,
                                                   SUPERVISED_IM_WT["multimodal"])), refusable=True),
        Stage("embed-mined-test", _argv(*run.embed_argv("test", model, "mined_multimodal")), needs="train-mined"),
    ]
    return stages + _auto_stages(run, "mined", run.path("embeddings", "mined_multimodal", "test"),
                                 run.path("links", "mined_multimodal"), None, needs="embed-mined-test")


def _report_stage(run: Run) -> Stage:
    """The demo's last stage: the report of the best row's test links."""
    name = "supervised_multimodal"
    return Stage("report", _argv(
        "report", "--links", run.path("links", f"{name}_multimodal"), "--archive", run.split("test"),
        "--out", run.path("report"), "--curve", join(run.path("tune", f"{name}_multimodal"), "curve.csv"),
        "--embeddings", run.path("embeddings", name, "test"),
        # the model's path as --out spells it: a rerun from another working directory resumes this stage
        "--made-by", f"{BEST_ROW} (model {run.path('models', name)})"))


def stage_plan(run: Run, built_in: bool, label_free: bool = False, demo: bool = False) -> list[Stage]:
    """Every stage of a replication, in order: with the built-in archive `synth` first, with `label_free` the
    label-free rows' stages, with `demo` the report last. `replicate` and `demo` run it; `clippings status`
    reports a folder's record against its names."""
    s = run.settings
    test, val = run.split("test"), run.split("val")
    jaccard, pixels, selfsup = run.path("links", "jaccard"), run.path("links", "pixels"), run.path("models", "selfsup")
    stages = [Stage("synth", _argv("synth", "--out", run.data, "--stories", str(s.stories), "--seed",
                                   str(run.seed), "--difficulty", run.difficulty))] if built_in else []
    stages += [  # Jaccard: n and overlap tuned on val inside the baseline command
        Stage("jaccard", _argv("baseline", "--archive", test, "--val", val, "--out", jaccard)),
        Stage("jaccard-evaluate", _argv("evaluate", "--links", jaccard, "--archive", test)),
        Stage("pixels", _argv("baseline", "--method", "pixels", "--archive", test, "--val", val, "--out", pixels,
                              *run.images.argv())),
        Stage("pixels-evaluate", _argv("evaluate", "--links", pixels, "--archive", test)),
        *_embed_score_stages(run, "frozen", s.model, None, label_free),
        Stage("pretrain", _argv("pretrain", "--archive", run.split("unlabelled"), "--out", selfsup, "--model", s.model,
                                "--epochs", str(s.pretrain_epochs), "--batch-size", str(s.batch_size), "--workers",
                                str(s.workers), "--seed", str(run.seed), "--view-weight", repr(s.view_weight),
                                "--clip-weight", repr(s.clip_weight), *s.lr_argv("pretrain"),
                                *run.images.argv())),
        *_embed_score_stages(run, "selfsup", selfsup, None, label_free),
    ]
    for row, im_wt in SUPERVISED_IM_WT.items():
        model = run.path("models", f"supervised_{row}")
        stages += [Stage(f"train-{row}", _argv(*run.train_argv(run.split("train"), val, model, selfsup, im_wt))),
                   *_embed_score_stages(run, f"supervised_{row}", model, row, label_free)]
    stages += _late_fusion_stages(run, label_free)
    if label_free:
        stages += label_free_stages(run, selfsup, embed_test=False)
    return stages + ([_report_stage(run)] if demo else [])


def _baseline_row(links: str, **extra: float) -> dict:
    info = read_json(join(links, "links.json"))
    return {"ari": _metrics(links)["ari"], **extra, "links": links,
            **{key: info.get(key) for key in ("n", "overlap", "threshold", "val_ari") if key in info}}


def _auto_fields(record: Mapping[str, dict], name: str, links: str) -> dict:
    """A row's fields at the auto t (auto_ari, auto_threshold, auto_im_wt), or auto_refused where the cut saw
    no clear valley or its model was not trained."""
    if f"evaluate-{name}" not in record:
        return {"auto_refused": True}
    cut = read_json(join(links, "links.json"))["auto"]
    return {"auto_ari": _metrics(links)["ari"], "auto_threshold": cut["threshold"], "auto_im_wt": cut["im_wt"],
            "auto_links": links}


def _auto_row(auto: dict, model: str) -> dict:
    """A label-free row: its ARI, t and w are the auto cut's (None where it refused)."""
    return {"ari": auto.get("auto_ari"), "threshold": auto.get("auto_threshold"), "im_wt": auto.get("auto_im_wt"),
            "links": auto.get("auto_links"), "model": model, **auto}


def _embed_rows(run: Run, record: Mapping[str, dict], name: str, model: str, prefix: str, only: str | None,
                label_free: bool, title: str | None = None) -> dict[str, dict]:
    """The rows of embeddings/<name>, each "<prefix> <row>" (or `title`, for the one row `only`)."""
    rows = {}
    for row in _tuned_rows(only):
        tune_dir, links = run.path("tune", f"{name}_{row}"), run.path("links", f"{name}_{row}")
        choice = _tuned(tune_dir)
        fields = {"ari": _metrics(links)["ari"], "threshold": choice["threshold"], "im_wt": choice["im_wt"],
                  "val_ari": choice.get("ari"), "links": links, "model": model, "tune": tune_dir}
        if label_free:
            fields.update(_auto_fields(record, f"{name}-{row}-auto", run.path("links", f"{name}_{row}_auto")))
        rows[title or f"{prefix} {row}"] = fields
    return rows


def label_free_rows(run: Run, record: Mapping[str, dict], selfsup: str) -> dict[str, dict]:
    """LABEL_FREE_ROWS read from the outputs of `label_free_stages` (and `record`, their refusals)."""
    return {"Label-free multimodal": _auto_row(_auto_fields(record, "label_free", run.path("links", "label_free")),
                                               selfsup),
            "Mined multimodal": _auto_row(_auto_fields(record, "mined", run.path("links", "mined_multimodal")),
                                          run.path("models", "mined_multimodal"))}


def collect_rows(run: Run, record: Mapping[str, dict], label_free: bool) -> dict[str, dict]:
    """Every row of the table, read from the outputs of a finished `stage_plan`."""
    selfsup = run.path("models", "selfsup")
    rows = {"Jaccard": _baseline_row(run.path("links", "jaccard")),
            "Pixel cosine": _baseline_row(run.path("links", "pixels"), im_wt=1.0)}
    rows.update(_embed_rows(run, record, "frozen", run.settings.model, "Frozen", None, label_free))
    rows.update(_embed_rows(run, record, "selfsup", selfsup, "Self-supervised", None, label_free))
    for row in SUPERVISED_IM_WT:
        rows.update(_embed_rows(run, record, f"supervised_{row}", run.path("models", f"supervised_{row}"),
                                "Supervised", row, label_free))
    fused = f"image tower of {run.path('models', 'supervised_visual')}, text tower of " \
            f"{run.path('models', 'supervised_language')}"
    rows.update(_embed_rows(run, record, LATE_FUSION, fused, "", "multimodal", label_free,
                            title="Supervised late fusion"))
    if label_free:
        rows.update(label_free_rows(run, record, selfsup))
    return rows


def replicate(out: str, scale: str = "small", archive: str | None = None, seed: int = 0,
              cli_main: Callable[[list[str]], int] | None = None, images: ImagePolicy = ARCHIVE_ONLY,
              overwrite: bool = False, label_free: bool = False, demo: bool = False, difficulty: str | None = None,
              **overrides: int) -> dict:
    """Run the protocol (`stage_plan`) into `out/` and return the results (also in results.json/.md).

    archive: a folder holding labelled `train`, `val`, `test` and an `unlabelled` split (the built-in
    archive is generated into `out/data` when None; a given one's part files are fingerprinted, so a
    re-run on changed data does not skip stages made from the old). overrides: Scale fields to change
    (stories, pretrain_epochs, train_epochs, batch_size, workers); None values are ignored. images: which
    image paths outside the split folders the stages that read images (pretrain, train, embed) may read.
    overwrite: run every stage afresh instead of skipping finished ones (`StageRunner`). label_free: add
    LABEL_FREE_ROWS and each embedding row's test ARI at the auto t (module docstring); costs one mining,
    one SupCon training and a link per row more. demo: end with the report of BEST_ROW's links (`report/`).
    difficulty: the built-in archive's (default BUILT_IN_DIFFICULTY); refused with a given archive.
    Cost at `small` without label_free: ≤ 10 minutes on 2 CPU cores.
    """
    if archive is not None and difficulty is not None:
        raise BadInput("replicate: --difficulty is the built-in archive's; a given --archive is as hard as it is")
    if cli_main is None:
        from clippings.cli import main as cli_main
    settings = replace(SCALES[scale], **{k: v for k, v in overrides.items() if v is not None})
    inputs = {} if archive is None else {s: dataset_fingerprint(join(archive, s), s) for s in SPLITS}
    run = Run(out, archive or join(out, "data"), settings, seed, images, difficulty or BUILT_IN_DIFFICULTY)
    stages = StageRunner(out, cli_main, inputs, overwrite)
    stages.run_plan(stage_plan(run, built_in=archive is None, label_free=label_free, demo=demo))
    rows = collect_rows(run, stages.record, label_free)
    results = {"scale": scale, "settings": asdict(settings), "archive": run.data, "seed": seed,
               "difficulty": run.difficulty if archive is None else None, "rows": rows,
               "multimodal_choice": multimodal_choice(rows), "paper_ari": PAPER_ARI,
               "stage_seconds": {k: v["seconds"] for k, v in stages.record.items()}}
    write_json(join(out, "results.json"), results)
    write_bytes_atomic(join(out, "results.md"), results_markdown(results).encode())
    return results


def replicate_seeds(out: str, seeds: int, scale: str = "small", **kwargs) -> dict:
    """Run `replicate` for seeds 0..seeds−1 (training seed and, for the built-in archive, archive seed) into
    `out/seed-<s>/` and write the mean ± sample sd of each row's ARI to `out/results.{json,md}`.

    One seed is the plain `replicate` into `out/`. Cost: `seeds` times one replication; resumable per seed.
    """
    if seeds == 1:
        return replicate(out, scale=scale, **kwargs)
    kwargs.pop("seed", None)
    runs = [replicate(join(out, f"seed-{s}"), scale=scale, seed=s, **kwargs) for s in range(seeds)]
    rows = summarise_seeds(runs)
    results = {"scale": scale, "seeds": seeds, "settings": runs[0]["settings"], "difficulty": runs[0]["difficulty"],
               "archives": [run["archive"] for run in runs], "rows": rows, "multimodal_choice": multimodal_choice(rows),
               "paper_ari": PAPER_ARI, "stage_seconds": [run["stage_seconds"] for run in runs]}
    write_json(join(out, "results.json"), results)
    write_bytes_atomic(join(out, "results.md"), seeds_markdown(results).encode())
    return results
