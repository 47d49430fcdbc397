"""The paper's protocol, end to end, as a resumable chain of CLI stages: the seven-row ARI table.

Rows (Arora, Yang, Jheng & Dell, table of newspaper image-captions, ARI ×100): Jaccard; self-supervised
visual (w=1), language (w=0), multimodal (w tuned); supervised visual, language, multimodal. Every row is
measured the same way: tune t (and w where the row says so) on `val`, link `test` at that t, score ARI.

Each stage is a `clippings` subcommand writing into `out/`; a stage's success is recorded in
`out/stages.json` after it finishes, so a re-run skips finished stages instead of recomputing them.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

from clippings.archive import exists, join, read_json, write_bytes_atomic, write_json
from clippings.errors import BadInput

log = logging.getLogger("clippings.replicate")

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
    extra_train: tuple[str, ...] = field(default_factory=tuple)


SCALES = {
    # the built-in archive's default size, within the demo budget on 2 CPU cores: tiny CLIP, a few epochs
    "small": Scale(stories=2000, model="tiny", pretrain_epochs=8, train_epochs=12, batch_size=64),
    # the paper's settings: ViT-B/32 CLIP (hub; needs a connection or a local copy), m=3, k=3, τ=0.1, w=0.5
    "paper": Scale(stories=20000, model="openai/clip-vit-base-patch32", pretrain_epochs=10, train_epochs=20,
                   batch_size=153),
}


class StageRunner:
    """Runs named stages once: a finished stage (recorded in `out/stages.json`) is skipped on re-run."""

    def __init__(self, out: str, cli_main: Callable[[list[str]], int]):
        self.out = out
        self.cli_main = cli_main
        self.record_path = join(out, "stages.json")
        self.record: dict = read_json(self.record_path) if exists(self.record_path) else {}

    def run(self, name: str, argv: list[str]) -> None:
        """Run `clippings <argv>` unless `name` finished before; raise on failure."""
        if name in self.record:
            log.info("stage %-28s done before, skipped", name)
            return
        log.info("stage %-28s clippings %s", name, " ".join(argv))
        start = time.perf_counter()
        code = self.cli_main(argv)
        if code != 0:
            raise BadInput(f"replicate stage {name!r} failed (exit {code}): clippings {' '.join(argv)}")
        self.record[name] = {"seconds": round(time.perf_counter() - start, 2), "argv": argv}
        write_json(self.record_path, self.record)


def _metrics(links_dir: str) -> dict:
    return read_json(join(links_dir, "metrics.json"))


def _tuned(tune_dir: str) -> dict:
    return read_json(join(tune_dir, "tune.json"))


def replicate(out: str, scale: str = "small", archive: str | None = None, seed: int = 0,
              cli_main: Callable[[list[str]], int] | None = None, **overrides: int) -> dict:
    """Run the seven-row protocol into `out/` and return the results (also written to results.json/.md).

    archive: a folder holding labelled `train`, `val`, `test` and an `unlabelled` split (the built-in
    archive is generated into `out/data` when None). overrides: Scale fields to change (stories,
    pretrain_epochs, train_epochs, batch_size, workers); None values are ignored. Cost at `small`: ≤ 10 minutes
    on 2 CPU cores.
    """
    if cli_main is None:
        from clippings.cli import main as cli_main
    settings = replace(SCALES[scale], **{k: v for k, v in overrides.items() if v is not None})
    stages = StageRunner(out, cli_main)
    data = archive or join(out, "data")
    if archive is None:
        stages.run("synth", ["synth", "--out", data, "--stories", str(settings.stories), "--seed", str(seed)])
    split = {name: join(data, name) for name in ("unlabelled", "train", "val", "test")}
    rows: dict[str, dict] = {}

    # Jaccard: n and overlap tuned on val inside the baseline command
    jaccard = join(out, "links", "jaccard")
    stages.run("jaccard", ["baseline", "--archive", split["test"], "--val", split["val"], "--out", jaccard])
    stages.run("jaccard-evaluate", ["evaluate", "--links", jaccard, "--archive", split["test"]])
    rows["Jaccard"] = {"ari": _metrics(jaccard)["ari"], **_baseline_choice(jaccard)}

    selfsup = join(out, "models", "selfsup")
    stages.run("pretrain", ["pretrain", "--archive", split["unlabelled"], "--out", selfsup,
                            "--model", settings.model, "--epochs", str(settings.pretrain_epochs),
                            "--batch-size", str(settings.batch_size), "--workers", str(settings.workers),
                            "--seed", str(seed)])
    _embed_score(stages, out, "selfsup", selfsup, split, rows, prefix="Self-supervised")

    for row, im_wt in (("visual", "1.0"), ("language", "0.0"), ("multimodal", "0.5")):
        model = join(out, "models", f"supervised_{row}")
        stages.run(f"train-{row}", ["train", "--archive", split["train"], "--val", split["val"], "--out", model,
                                    "--model", selfsup, "--im-wt", im_wt, "--epochs", str(settings.train_epochs),
                                    "--workers", str(settings.workers), "--seed", str(seed),
                                    *settings.extra_train])
        _embed_score(stages, out, f"supervised_{row}", model, split, rows, prefix="Supervised", only=row)

    results = {"scale": scale, "settings": asdict(settings), "archive": data, "seed": seed, "rows": rows,
               "paper_ari": PAPER_ARI, "stage_seconds": {k: v["seconds"] for k, v in stages.record.items()}}
    write_json(join(out, "results.json"), results)
    write_bytes_atomic(join(out, "results.md"), results_markdown(results).encode())
    return results


def _baseline_choice(links_dir: str) -> dict:
    info = read_json(join(links_dir, "links.json"))
    return {key: info.get(key) for key in ("n", "overlap", "threshold") if key in info}


def _embed_score(stages: StageRunner, out: str, name: str, model: str, split: dict, rows: dict, prefix: str,
                 only: str | None = None) -> None:
    """Embed val and test with `model`, tune on val, link test at the tuned t, score test ARI."""
    emb = {s: join(out, "embeddings", name, s) for s in ("val", "test")}
    for s in ("val", "test"):
        stages.run(f"embed-{name}-{s}", ["embed", "--archive", split[s], "--model", model, "--out", emb[s]])
    variants = {"visual": ["--im-wt", "1.0"], "language": ["--im-wt", "0.0"], "multimodal": ["--search-im-wt"]}
    for row, flags in variants.items():
        if only is not None and row != only:
            continue
        tune_dir = join(out, "tune", f"{name}_{row}")
        stages.run(f"tune-{name}-{row}", ["tune", "--embeddings", emb["val"], "--archive", split["val"],
                                          *flags, "--out", tune_dir])
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


def results_markdown(results: dict) -> str:
    """The table as Markdown: measured ARI ×100 beside the paper's, with the chosen t and w."""
    lines = [
        f"# Replication ({results['scale']} scale, archive {results['archive']}, seed {results['seed']})",
        "",
        "| Method | ARI ×100 (measured) | ARI ×100 (paper) | threshold t | w (image weight) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, paper in results["paper_ari"].items():
        row = results["rows"].get(name, {})
        ari = row.get("ari")
        t = row.get("threshold")
        w = row.get("im_wt")
        lines.append(
            f"| {name} | {'' if ari is None else f'{100 * ari:.1f}'} | {paper:.1f} | "
            f"{'' if t is None else f'{t:.4f}'} | {'' if w is None else f'{w:.2f}'} |"
        )
    return "\n".join(lines) + "\n"


def print_table(results: dict) -> None:
    print(results_markdown(results))
    print(json.dumps({k: round(v["ari"], 4) for k, v in results["rows"].items()}))
