"""The replication table: its rows, the paper's figures beside them, one run's table and the mean ± sd over seeds.

Rows (Arora, Yang, Jheng & Dell, table of newspaper image-captions, ARI ×100): Jaccard; self-supervised
visual (w=1), language (w=0), multimodal (w tuned); supervised visual, language, multimodal. Added here:
Pixel cosine (the visual rule baseline beside Jaccard); the frozen rows (the start model's towers with no
training: the floor that continued pretraining must not fall below); late fusion (the supervised visual
row's image tower beside the supervised language row's text tower, w and t tuned on val: what training the
pooled embedding jointly must beat) and, with `replicate --label-free`, the rows that read no labels
(LABEL_FREE_ROWS). Under the table, which of the two multimodal models the run ships (`multimodal_choice`).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping

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
    "Supervised late fusion",
)

LABEL_FREE_ROWS = ("Label-free multimodal", "Mined multimodal")
"""Rows that read no labels but `test`'s, to score (`replicate(label_free=True)`)."""

PAPER_ARI = {
    "Jaccard": 40.3,
    "Self-supervised visual": 40.7,
    "Self-supervised language": 31.0,
    "Self-supervised multimodal": 43.0,
    "Supervised visual": 59.7,
    "Supervised language": 38.9,
    "Supervised multimodal": 61.5,
}


JOINT, LATE = "Supervised multimodal", "Supervised late fusion"
"""The two multimodal candidates: one model trained on the pooled embedding, or two towers trained apart."""


def multimodal_choice(rows: Mapping[str, dict]) -> dict | None:
    """Which multimodal model a run ships, chosen by validation ARI alone (the test split never chooses):
    JOINT unless LATE's val ARI is higher. A row's val ARI is one run's value or, for a table over seeds,
    its mean. Returns {"row", "val_ari", "other", "other_val_ari", "model"}; None when a row has no val ARI."""

    def val(name: str) -> float | None:
        value = rows.get(name, {}).get("val_ari")
        return value["mean"] if isinstance(value, Mapping) else value

    if val(JOINT) is None or val(LATE) is None:
        return None
    chosen, other = (LATE, JOINT) if val(LATE) > val(JOINT) else (JOINT, LATE)
    return {"row": chosen, "val_ari": val(chosen), "other": other, "other_val_ari": val(other),
            "model": rows[chosen].get("model")}


def _choice_line(choice: dict | None) -> list[str]:
    if choice is None:
        return []
    return ["", f"Multimodal model shipped: **{choice['row']}** (val ARI ×100 {100 * choice['val_ari']:.1f}, "
                f"{choice['other']} {100 * choice['other_val_ari']:.1f}; chosen on val)."]


def _cell(value: float | None, fmt: str) -> str:
    return "" if value is None else format(value, fmt)


def _difficulty(results: Mapping) -> str:
    """', the <d> built-in archive' for a table of the built-in archive."""
    return f", the {results['difficulty']} built-in archive" if results.get("difficulty") else ""


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
        f"# Replication ({results['scale']} scale, archive {results['archive']}{_difficulty(results)}, "
        f"seed {results['seed']})",
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
    lines += _choice_line(multimodal_choice(results["rows"]))
    return "\n".join(lines) + "\n"


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
        f"# Replication ({results['scale']} scale{_difficulty(results)}, {results['seeds']} seeds: mean ± sd)",
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
    lines += _choice_line(multimodal_choice(results["rows"]))
    return "\n".join(lines) + "\n"


def print_table(results: dict) -> None:
    if "seeds" in results:
        print(seeds_markdown(results))
        return
    print(results_markdown(results))
    print(json.dumps({k: None if v.get("ari") is None else round(v["ari"], 4) for k, v in results["rows"].items()}))
