"""`clippings evaluate`: score a links folder against a labelled archive."""

from __future__ import annotations

import argparse

HELP = "Score DIR/clusters.parquet against a labelled archive: ARI, pairwise P/R/F1 (writes DIR/metrics.json)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--links", required=True, help="links folder (clusters.parquet, optional _quarantine/)")
    parser.add_argument("--archive", required=True, help="the labelled archive that was linked")


def run(args: argparse.Namespace) -> int:
    from clippings.evaluate import evaluate_links
    from clippings.logs import finish
    from clippings.storage import join

    m = evaluate_links(args.links, args.archive)
    pc = m["predicted_clusters"]
    finish(f"ARI {m['ari']:.4f}, pairwise precision {m['precision']:.4f} recall {m['recall']:.4f} "
           f"F1 {m['f1']:.4f} ({m['n']} clippings, {pc['clusters']} clusters, {m['true_clusters']['clusters']} "
           f"true groups, {m['quarantined']} quarantined, {m['no_caption']} with (no caption))",
           join(args.links, "metrics.json"))
    return 0
