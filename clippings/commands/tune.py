"""`clippings tune`: the threshold (and image weight) with the best ARI on a labelled embeddings set."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

import numpy as np

from clippings.link.auto import DEFAULT_METHOD, METHODS
from clippings.params import Interval, OneOf, validate_params

if TYPE_CHECKING:
    from clippings.embeddings import Embeddings

HELP = ("Tune the linking threshold t (and optionally the image weight w) exactly on labelled embeddings, from "
        "pairs answered in 'clippings label' (--pairs), or without labels from the embeddings alone (the valley of "
        "the MST edge lengths).")

CONSTRAINTS = {
    "im_wt": Interval(float, 0.0, 1.0),
    "k": Interval(int, 1, None),
    "max_threshold": Interval(float, 0.0, 2.0),
    "auto_method": OneOf(METHODS),
}
GRID = tuple(round(0.1 * i, 1) for i in range(11))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--embeddings", required=True, help="embeddings of a labelled set (local or s3://)")
    parser.add_argument(
        "--archive",
        default=None,
        help="the labelled archive those embeddings came from; without it t (and w, unless --im-wt or --model "
        "gives it) is chosen without labels, as 'link --threshold auto' does, and refused where unclear",
    )
    parser.add_argument(
        "--pairs",
        default=None,
        help="a label folder of 'clippings label': t from its answered pairs alone (at the w they were asked at, "
        "unless --im-wt or --search-im-wt), with an interval for t and precision/recall at t from the pairs "
        "asked at random",
    )
    parser.add_argument(
        "--auto-method",
        default=DEFAULT_METHOD,
        help=f"without --archive: {', '.join(METHODS)} (default: {DEFAULT_METHOD}, provisional)",
    )
    w = parser.add_mutually_exclusive_group()
    w.add_argument(
        "--im-wt",
        type=float,
        default=None,
        help="image weight w (default: --model's clippings.json, else 0.5)",
    )
    w.add_argument("--search-im-wt", action="store_true",
                   help="also choose w from the grid 0, 0.1, ..., 1")
    parser.add_argument(
        "--model", default=None, help="model folder: the choice is written to its clippings.json"
    )
    parser.add_argument("--out", default=None, help="folder for tune.json, curve.csv and curve.png")
    parser.add_argument("--k", type=int, default=20, help="neighbours per clipping above 4096 clippings")
    parser.add_argument(
        "--max-threshold",
        type=float,
        default=None,
        help="complete the graph up to this distance (default: all pairs up to 4096 clippings)",
    )


def _labels_for(emb_ids: np.ndarray, archive: str, embeddings: str) -> np.ndarray:
    from clippings.archive import read_archive
    from clippings.errors import BadInput

    table = read_archive(archive, require_labels=True)
    label_of = dict(
        zip(table.column("clipping_id").to_pylist(), table.column("label").to_pylist(), strict=True)
    )
    missing = [i for i in emb_ids.tolist() if i not in label_of]
    if missing:
        raise BadInput(
            f"embeddings {embeddings}: {len(missing)} clipping ids are not in archive {archive} "
            f"(e.g. {missing[0]!r}); give the labelled archive these embeddings were made from"
        )
    return np.asarray([label_of[i] for i in emb_ids.tolist()], dtype=object)


def curve_png(
    thresholds: np.ndarray, aris: np.ndarray, chosen: float, size: tuple[int, int] = (640, 400)
) -> bytes:
    """A step plot of ARI against t with the chosen t marked, drawn with Pillow (no plotting library)."""
    import io

    from PIL import Image, ImageDraw

    w, h = size
    left, right, top, bottom = 56, 16, 16, 40
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    t_max = max(float(thresholds.max()) if len(thresholds) else 0.0, chosen, 1e-6) * 1.05
    lo = min(0.0, float(aris.min()) if len(aris) else 0.0)

    def xy(t: float, a: float) -> tuple[float, float]:
        return (
            left + (w - left - right) * t / t_max,
            h - bottom - (h - top - bottom) * (a - lo) / (1.0 - lo),
        )

    draw.rectangle([left, top, w - right, h - bottom], outline="black")
    for frac in (0.0, 0.5, 1.0):
        a = lo + frac * (1.0 - lo)
        draw.text((4, xy(0, a)[1] - 6), f"{a:.2f}", fill="black")
        draw.text((xy(frac * t_max, lo)[0] - 12, h - bottom + 6), f"{frac * t_max:.3f}", fill="black")
    draw.text((w // 2 - 60, h - 18), "threshold t (cosine distance)", fill="black")
    points = []
    for i, (t, a) in enumerate(zip(thresholds, aris, strict=True)):
        nxt = thresholds[i + 1] if i + 1 < len(thresholds) else t_max
        points += [xy(t, a), xy(nxt, a)]
    if len(points) > 1:
        draw.line(points, fill=(31, 119, 180), width=2)
    x = xy(chosen, lo)[0]
    draw.line([(x, top), (x, h - bottom)], fill=(214, 39, 40), width=1)
    draw.text((x + 4, top + 4), f"t = {chosen:.4f}", fill=(214, 39, 40))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _run_auto(args: argparse.Namespace, emb: Embeddings) -> int:
    """No labels: t and w from clippings.link.auto.choose (w fixed by --im-wt or --model's clippings.json
    unless --search-im-wt; else the grid), written to tune.json and --model's clippings.json."""
    from clippings.link.auto import W_GRID, choose
    from clippings.logs import finish
    from clippings.model_meta import read_clippings_meta, update_clippings_meta
    from clippings.storage import join, write_json

    meta = read_clippings_meta(args.model) if args.model else {}
    im_wt = None if args.search_im_wt else args.im_wt if args.im_wt is not None else meta.get("im_wt")
    cut = choose(emb, W_GRID if im_wt is None else (float(im_wt),), method=args.auto_method, k=args.k,
                 who="tune without --archive")
    if args.out:
        write_json(join(args.out, "tune.json"), {
            **cut.record(), "clippings": int(len(emb.ids)), "fingerprint": emb.fingerprint,
            "embeddings": args.embeddings, "rule": "label-free: " + cut.method + " of the MST edge lengths",
        })
    if args.model:
        update_clippings_meta(args.model, im_wt=cut.im_wt, threshold=cut.threshold,
                              threshold_method=f"auto:{cut.method}", auto_depth=cut.depth,
                              val_ari=None)  # no labelled score for this t
    finish(cut.line("tune"), args.out or args.model)
    return 0


def _run_pairs(args: argparse.Namespace, emb: Embeddings) -> int:
    """t from the answers of a label folder alone (clippings.label.fit.fit_weights), written to tune.json and
    --model's clippings.json. w is the one the pairs were asked at (the label folder's links), unless --im-wt
    fixes another or --search-im-wt searches the grid: each answer's weight (the pairs its edge joins) holds
    in the MST it was asked from, and on the replication's medium archive answers moved w off it to worse
    cuts (docs/benchmarks.md, "bench.label at medium over 3 seeds")."""
    from clippings.errors import BadInput
    from clippings.label.answers import read_answers
    from clippings.label.fit import both_towers, fit_weights
    from clippings.logs import finish
    from clippings.model_meta import read_clippings_meta, update_clippings_meta
    from clippings.storage import exists, join, read_json, write_json

    if args.archive is not None:
        raise BadInput("tune: give --pairs or --archive, not both (answered pairs or a labelled archive)")
    answers = read_answers(args.pairs)
    row = {cid: i for i, cid in enumerate(emb.ids.tolist())}
    missing = [x for a in answers for x in (a.a, a.b) if x not in row]
    if missing:
        raise BadInput(f"embeddings {args.embeddings}: {len(set(missing))} answered clipping ids are not in them "
                       f"(e.g. {missing[0]!r}); give the embeddings of the archive that was labelled")
    rows = np.asarray([row[x] for a in answers for x in (a.a, a.b)], np.int64)
    session = read_json(join(args.pairs, "label.json")) if exists(join(args.pairs, "label.json")) else {}
    meta = read_clippings_meta(args.model) if args.model else {}
    asked = session.get("im_wt")
    prefer = float(asked if asked is not None else meta.get("im_wt", 0.5))
    search = args.search_im_wt and both_towers(emb.image[rows], emb.text[rows])
    weights = GRID if search else (float(args.im_wt) if args.im_wt is not None else prefer,)
    try:
        best_w, fit, grid = fit_weights(answers, emb.image[rows], emb.text[rows], weights, prefer)
    except ValueError as e:
        raise BadInput(f"pairs {args.pairs}: {len(answers)} answers give no threshold: {e}") from e
    record = {**fit.record(), "im_wt": best_w, "answers": len(answers), "grid": grid, "pairs": args.pairs,
              "embeddings": args.embeddings, "fingerprint": emb.fingerprint,
              "rule": "fewest clipping pairs on the wrong side of t, each answer weighing the pairs its MST edge "
                      "joins (midpoint of the first best run of cuts); "
                      "interval: 5th-95th percentile of a bootstrap; precision/recall: pairs asked at random"}
    if args.out:
        write_json(join(args.out, "tune.json"), record)
    if args.model:
        update_clippings_meta(args.model, im_wt=best_w, threshold=fit.threshold, threshold_method="pairs",
                              auto_depth=None, val_ari=None)
    low, high = fit.interval if fit.interval else (float("nan"), float("nan"))
    pr = ("no random pairs answered" if fit.precision is None and fit.recall is None else
          f"precision {_share(fit.precision)} recall {_share(fit.recall)} from {fit.random_pairs} random pairs")
    finish(f"t={fit.threshold:.4f} [{low:.4f}, {high:.4f}] w={best_w:g} from {len(answers)} answers ({fit.same} "
           f"same, {fit.different} different, {fit.unsure} unsure; {fit.disagreements} on the wrong side, "
           f"joining {fit.wrong_pairs} clipping pairs); {pr}",
           args.out or args.model)
    return 0


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def run(args: argparse.Namespace) -> int:
    validate_params("tune", vars(args), CONSTRAINTS)
    from clippings.embeddings import read_embeddings
    from clippings.link.tune import tune_threshold
    from clippings.logs import finish
    from clippings.model_meta import read_clippings_meta, update_clippings_meta
    from clippings.storage import join, write_bytes_atomic, write_json

    emb = read_embeddings(args.embeddings)
    if args.pairs is not None:
        return _run_pairs(args, emb)
    if args.archive is None:
        return _run_auto(args, emb)
    labels = _labels_for(emb.ids, args.archive, args.embeddings)
    if args.search_im_wt:
        weights = GRID
    else:
        meta = read_clippings_meta(args.model) if args.model else {}
        weights = (args.im_wt if args.im_wt is not None else float(meta.get("im_wt", 0.5)),)
    results = {
        w: tune_threshold(emb.pooled(w), labels, k=args.k, max_threshold=args.max_threshold) for w in weights
    }
    # best ARI; ties go to the weight nearest 0.5 (both towers), then the smaller weight
    best_w = max(weights, key=lambda w: (results[w].ari, -abs(w - 0.5), -w))
    best = results[best_w]
    record = {
        "threshold": best.threshold,
        "im_wt": best_w,
        "ari": best.ari,
        "exact_up_to": best.exact_up_to,
        "clippings": int(len(emb.ids)),
        "fingerprint": emb.fingerprint,
        "embeddings": args.embeddings,
        "rule": "midpoint of the first best-ARI plateau of the exact single-linkage curve",
        "grid": [{"im_wt": w, "threshold": r.threshold, "ari": r.ari} for w, r in results.items()],
    }
    if args.out:
        pairs = zip(best.thresholds.tolist(), best.aris.tolist(), strict=True)  # plain floats, not np reprs
        lines = ["threshold,ari"] + [f"{t!r},{a!r}" for t, a in pairs]
        write_bytes_atomic(join(args.out, "curve.csv"), ("\n".join(lines) + "\n").encode())
        write_bytes_atomic(join(args.out, "curve.png"), curve_png(best.thresholds, best.aris, best.threshold))
        write_json(join(args.out, "tune.json"), record)
    if args.model:
        update_clippings_meta(args.model, im_wt=best_w, threshold=best.threshold, val_ari=best.ari,
                              threshold_method="labels", auto_depth=None)
    finish(f"t={best.threshold:.4f} w={best_w:g} val ARI {best.ari:.4f} ({len(emb.ids)} clippings, exact up to "
           f"{best.exact_up_to:.4f})", args.out or args.model)
    return 0
