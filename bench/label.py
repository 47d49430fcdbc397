"""A simulated labeller through `clippings label`'s own ask order, fit and export: how many answers does t need?

    python -m bench.label --run REPLICATE_OUT [--name supervised_multimodal] [--answers 25,50,100,200,400]
    python -m bench.label --scale small|medium [--stories N] [--seeds S] [--out DIR] [--train]
    python -m bench.label --quick                   # generated clustered towers, no files

Per seed: the MST of `val` at w = 0.5 is cut label-free (clippings.link.auto's default method), and a labeller
who knows val's labels answers the pairs clippings.label.selection.PairPlan asks, Same when the two clippings
share a label. After each budget of answers, t comes from the answers alone at the w they were asked at
(clippings.label.fit.fit_weights, as `tune --pairs` does; `--search-im-wt`: w too, over the grid, as `tune
--pairs --search-im-wt` does); `test` is linked at them and scored (ARI). The reference is t and w tuned
on all of val (clippings.link.tune, as `tune --search-im-wt` does), scored on test the same way.
With `--train`, the groups exported from the largest budget's answers (clippings.label.export) train a model
(`clippings train`, the supervised multimodal row's settings at `--scale`), whose test ARI at the t and w the
same answers give is printed beside. Embeddings come from a replicate run's folder (`--run`: embeddings/NAME/
{val,test} and data/{val,test}; a folder of several seeds is read as RUN/seed-N), whose self-supervised model
(models/selfsup) is then the start of the training, as it is for the supervised multimodal row, and whose row
is printed beside (results.json); or they are made here: the built-in archive at `--stories` (synth) embedded
by the scale's start model with no training, which is then the start.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from clippings.embeddings import Embeddings
from clippings.label.answers import Answer
from clippings.label.fit import fit_weights
from clippings.label.selection import PairPlan, answers_from_labels
from clippings.link.auto import DEFAULT_METHOD, cut_of
from clippings.link.knn import knn_graph
from clippings.link.slink import Mst, components, mst_from_graph
from clippings.link.tune import tune_threshold

GRID = tuple(round(0.1 * i, 1) for i in range(11))
BUDGETS = (25, 50, 100, 200, 400)
ASK_W = 0.5
"""The w of the links the pairs are asked from."""


def exact_mst(vectors: np.ndarray) -> Mst:
    """The exact single-linkage MST of unit vectors (complete graph: for a few thousand rows)."""
    graph = knn_graph(vectors, k=len(vectors) - 1)
    return mst_from_graph(len(vectors), graph.src, graph.dst, graph.distance)


class TestSet:
    """Test embeddings and labels, with the MST of each grid w built once: ARI of any (t, w) is a cut."""

    def __init__(self, emb: Embeddings, labels: np.ndarray):
        self.labels = labels
        self.msts = {w: exact_mst(emb.pooled(w)) for w in GRID}

    def ari(self, t: float, w: float) -> float:
        from sklearn.metrics import adjusted_rand_score

        return float(adjusted_rand_score(self.labels, components(self.msts[w], t)))


def val_tuned(val: Embeddings, labels: np.ndarray) -> tuple[float, float, float]:
    """(t, w, val ARI) tuned on all of val over the grid (ties: nearest 0.5, then smaller)."""
    fits = {w: tune_threshold(val.pooled(w), labels) for w in GRID}
    w = max(GRID, key=lambda x: (fits[x].ari, -abs(x - 0.5), -x))
    return fits[w].threshold, w, fits[w].ari


def simulate(val: Embeddings, labels: np.ndarray, count: int, seed: int) -> tuple[list[Answer], float]:
    """`count` answers from val's labels through the ask order over val's links at w = 0.5 cut label-free;
    returns the answers and the starting cut."""
    mst = exact_mst(val.pooled(ASK_W))
    start = cut_of(mst.distance, DEFAULT_METHOD).threshold
    answers = answers_from_labels(PairPlan(mst, val.ids, start, seed), labels, count)
    return answers, start


def from_answers(val: Embeddings, answers: list[Answer], search_w: bool = False) -> tuple[float, float, int]:
    """(t, w, disagreements) from the answers alone, as `tune --pairs` chooses them (search_w: w over the
    grid too, as `tune --pairs --search-im-wt`)."""
    row = {c: i for i, c in enumerate(val.ids.tolist())}
    rows = np.asarray([row[x] for a in answers for x in (a.a, a.b)], np.int64)
    w, fit, _ = fit_weights(answers, val.image[rows], val.text[rows], GRID if search_w else (ASK_W,), prefer=ASK_W)
    return fit.threshold, w, fit.disagreements


def measure(val: Embeddings, val_labels: np.ndarray, test: Embeddings, test_labels: np.ndarray, seed: int,
            budgets: tuple[int, ...], search_w: bool = False) -> tuple[dict, list[dict], list[Answer]]:
    """The reference row and one row per budget (t, w, test ARI, ratio to the reference; val ARI and its
    ratio to the val-tuned one, the figures a choice between rules is made on)."""
    vals = TestSet(val, val_labels)
    tests = TestSet(test, test_labels)
    t_val, w_val, val_ari = val_tuned(val, val_labels)
    reference = {"t": t_val, "w": w_val, "val_ari": val_ari, "ari": tests.ari(t_val, w_val)}
    answers, start = simulate(val, val_labels, max(budgets), seed)
    reference["start"] = start
    rows = []
    for n in budgets:
        if n > len(answers):
            break
        try:
            t, w, wrong = from_answers(val, answers[:n], search_w)
        except ValueError:  # only one kind of answer so far
            rows.append({"answers": n, "t": None, "w": None, "ari": None, "ratio": None, "val_ratio": None})
            continue
        ari = tests.ari(t, w)
        rows.append({"answers": n, "t": t, "w": w, "wrong": wrong, "ari": ari,
                     "ratio": ari / reference["ari"] if reference["ari"] > 0 else None,
                     "val_ratio": vals.ari(t, w) / val_ari if val_ari > 0 else None})
    return reference, rows, answers


def generated_sets(seed: int, n: int) -> tuple[Embeddings, np.ndarray, Embeddings, np.ndarray]:
    """val and test drawn from bench.auto_threshold's generated towers (two draws)."""
    from bench.auto_threshold import generated

    val, val_labels = generated(n, seed)
    test, test_labels = generated(n, seed + 1000)
    return val, val_labels.astype(str), test, test_labels.astype(str)


def built_in_sets(out: str, scale: str, stories: int | None, seed: int) -> tuple:
    """The built-in archive at `stories` (default: the scale's) embedded by the scale's start model: (val,
    val labels, test, test labels, data folder, the scale's settings)."""
    from clippings.cli import main as cli
    from clippings.replicate import SCALES

    settings = SCALES[scale]
    data = os.path.join(out, f"seed{seed}", "data")
    if not os.path.exists(os.path.join(data, "test")):
        assert cli(["synth", "--out", data, "--stories", str(stories or settings.stories), "--seed", str(seed)]) == 0
    embs = {}
    for split in ("val", "test"):
        emb = os.path.join(out, f"seed{seed}", "embeddings", split)
        if not os.path.exists(emb):
            assert cli(["embed", "--archive", os.path.join(data, split), "--model", settings.model, "--out", emb]) == 0
        embs[split] = emb
    return (*_read_split(embs["val"], os.path.join(data, "val")), *_read_split(embs["test"], os.path.join(data, "test")),
            data, settings)


def _read_split(emb_dir: str, archive: str) -> tuple[Embeddings, np.ndarray]:
    from clippings.commands.tune import _labels_for
    from clippings.embeddings import read_embeddings

    emb = read_embeddings(emb_dir)
    return emb, _labels_for(emb.ids, archive, emb_dir).astype(str)


def train_on_answers(answers: list[Answer], data: str, settings, out: str, start: str) -> float:
    """Export the answers' groups, train `start` on them (SupCon, `clippings train`, with the scale's settings
    for the supervised multimodal row: w = 0.5, its epochs and rates), choose t and w from the same answers on
    the new embeddings (`tune --pairs`) and return the test ARI there: no label beyond the answers is used."""
    from clippings.cli import main as cli
    from clippings.evaluate import evaluate_links
    from clippings.label.answers import AnswerLog
    from clippings.label.export import export_groups

    pairs = os.path.join(out, "pairs")
    log = AnswerLog(pairs)
    for a in answers:
        if not log.answered(a.a, a.b):
            log.add(a.a, a.b, a.distance, a.answer, a.reason, a.joins)
    groups = os.path.join(out, "groups")
    export_groups(answers, os.path.join(data, "val"), groups)
    trained = os.path.join(out, "model")
    steps = [["train", "--archive", os.path.join(groups, "train"), "--val", os.path.join(groups, "val"),
              "--out", trained, "--model", start, "--im-wt", "0.5", "--epochs", str(settings.epochs(0.5)),
              *settings.lr_argv("train"), *settings.extra_train],
             ["embed", "--archive", os.path.join(data, "val"), "--model", trained, "--out", os.path.join(out, "val")],
             ["embed", "--archive", os.path.join(data, "test"), "--model", trained, "--out", os.path.join(out, "test")],
             ["tune", "--pairs", pairs, "--embeddings", os.path.join(out, "val"), "--model", trained],
             ["link", "--embeddings", os.path.join(out, "test"), "--model", trained, "--out", os.path.join(out, "links")]]
    for argv in steps:
        assert cli(argv) == 0, " ".join(argv)
    return float(evaluate_links(os.path.join(out, "links"), os.path.join(data, "test"))["ari"])


def run_folder(run: str, seed: int) -> str:
    """A replicate output's folder for `seed`: RUN/seed-N when RUN holds several seeds, else RUN itself."""
    per_seed = os.path.join(run, f"seed-{seed}")
    return per_seed if os.path.isdir(per_seed) else run


def run_row(folder: str, name: str = "Supervised multimodal") -> float | None:
    """The test ARI of the row `name` in a replicate seed folder's results.json (None when it has none)."""
    import json

    path = os.path.join(folder, "results.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        row = json.load(f)["rows"].get(name)
    return None if row is None else row.get("ari")


def _f(value: float | None, fmt: str = "6.3f") -> str:
    return "   n/a" if value is None else format(value, fmt)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.label", description=__doc__.splitlines()[0])
    ap.add_argument("--run", default=None, help="a replicate output folder (embeddings/NAME/{val,test}, data/)")
    ap.add_argument("--name", default="supervised_multimodal", help="with --run: which embeddings")
    ap.add_argument("--scale", default="small", choices=("small", "medium"), help="without --run: start model")
    ap.add_argument("--stories", type=int, default=None, help="without --run: built-in archive size")
    ap.add_argument("--seeds", type=int, default=1, help="seeds (archive and ask order), reported one by one")
    ap.add_argument("--out", default="bench_label_out", help="without --run: folder for the data and embeddings")
    ap.add_argument("--answers", default=",".join(map(str, BUDGETS)), help="budgets of answers")
    ap.add_argument("--train", action="store_true", help="also train on the groups of the largest budget")
    ap.add_argument("--quick", action="store_true", help="generated towers (1,000 rows per split), no files")
    ap.add_argument("--search-im-wt", action="store_true", help="w from the answers too, over the grid")
    args = ap.parse_args(argv)
    budgets = tuple(int(x) for x in args.answers.split(","))
    print(f"bench.label: load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    ratios: dict[str, list[float]] = {}
    for seed in range(args.seeds):
        start = time.perf_counter()
        data = settings = folder = start_model = None
        if args.quick:
            val, val_labels, test, test_labels = generated_sets(seed, 1000)
            source = "generated towers"
        elif args.run:
            from clippings.replicate import SCALES

            folder = run_folder(args.run, seed)
            data, settings = os.path.join(folder, "data"), SCALES[args.scale]
            val, val_labels = _read_split(os.path.join(folder, "embeddings", args.name, "val"), os.path.join(data, "val"))
            test, test_labels = _read_split(os.path.join(folder, "embeddings", args.name, "test"),
                                            os.path.join(data, "test"))
            selfsup = os.path.join(folder, "models", "selfsup")
            start_model = selfsup if os.path.isdir(selfsup) else settings.model
            source = f"{folder} {args.name}"
        else:
            val, val_labels, test, test_labels, data, settings = built_in_sets(args.out, args.scale, args.stories, seed)
            start_model, folder = settings.model, None
            source = f"built-in archive ({args.stories or 'scale'} stories), {args.scale} start model, frozen"
        reference, rows, answers = measure(val, val_labels, test, test_labels, seed, budgets, args.search_im_wt)
        print(f"seed {seed}: {source}; val {len(val.ids)} rows, test {len(test.ids)} rows; ask order from the "
              f"label-free cut t = {reference['start']:.4f} at w = {ASK_W}")
        print(f"{'answers':>9} {'t':>7} {'w':>4} {'wrong':>5} {'test ARI':>8} {'ratio':>6} {'val ratio':>9}")
        for r in rows:
            print(f"{r['answers']:>9} {_f(r['t'], '7.4f')} {_f(r['w'], '4.1f')} {r.get('wrong', ''):>5} "
                  f"{_f(r['ari'], '8.3f')} {_f(r['ratio'])} {_f(r['val_ratio'], '9.3f')}")
            for key, name in (("ratio", "test"), ("val_ratio", "val")):
                value = r[key] if r[key] is not None else float("nan")
                ratios.setdefault(f"{name} ratio at {r['answers']}", []).append(value)
        print(f"{'all val':>9} {reference['t']:7.4f} {reference['w']:4.1f} {'':>5} {reference['ari']:8.3f}  1.000 "
              f"(val ARI {reference['val_ari']:.3f}, {len(val.ids)} labelled rows)")
        if args.train:
            if data is None or settings is None:
                raise SystemExit("--train needs an archive (the built-in one or --run's), not --quick")
            ari = train_on_answers(answers, data, settings, os.path.join(args.out, f"seed{seed}", "trained"),
                                   start_model)
            row = run_row(folder) if folder else None
            beside = "" if row is None else f"; the run's supervised multimodal row {row:.3f}, ratio {ari / row:.3f}"
            print(f"trained on the groups of {len(answers)} answers from {start_model}: test ARI {ari:.3f}{beside}")
            if row is not None:
                ratios.setdefault("trained / supervised", []).append(ari / row)
        print(f"seed {seed}: {time.perf_counter() - start:.1f} s")
    if args.seeds > 1:
        print(f"over {args.seeds} seeds, mean ± sample standard deviation (a seed without a fit counts as nan):")
        for key, values in ratios.items():
            print(f"{key:>22} {np.mean(values):6.3f} ± {np.std(values, ddof=1):.3f}  ({' '.join(f'{v:.3f}' for v in values)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
