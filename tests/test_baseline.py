"""The Jaccard baseline: exact n-gram sets, prefix-filter candidates equal to brute force, the CLI."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from clippings import cli
from clippings.archive import read_archive
from clippings.baselines import (
    SN_HASHES,
    SN_WINDOW,
    _effective_cap,
    candidate_pairs,
    candidate_pairs_of,
    clean_caption,
    jaccard_of_pairs,
    ngram_sets,
    stable_cluster_ids,
)
from clippings.synth import generate_captions


def _py_sets(captions, n):
    out = []
    for c in captions:
        w = clean_caption(c)
        out.append({tuple(w)} if 0 < len(w) < n else {tuple(w[i:i + n]) for i in range(len(w) - n + 1)})
    return out


def test_clean_caption_joins_broken_hyphenation():
    assert clean_caption("The con- tinued STORY, (AP) —  page 6.") == ["the", "continued", "story", "ap", "page", "6"]
    assert clean_caption(None) == [] and clean_caption("") == []


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_ngram_sets_equal_python_sets(n):
    captions = ["a b c d", "a b", "", "b c d e a b", "x", "a b c d", "c d e"]
    sets = ngram_sets(captions, n)
    expected = _py_sets(captions, n)
    for i, j in itertools.combinations(range(len(captions)), 2):
        a = set(sets.grams[sets.indptr[i]:sets.indptr[i + 1]].tolist())
        b = set(sets.grams[sets.indptr[j]:sets.indptr[j + 1]].tolist())
        assert len(a) == len(expected[i]) and len(b) == len(expected[j])
        assert len(a & b) == len(expected[i] & expected[j])


@pytest.mark.parametrize(("n", "overlap"), [(1, 0.3), (1, 0.5), (2, 0.2), (3, 0.45), (2, 1.0)])
def test_prefix_filter_candidates_equal_brute_force(n, overlap):
    captions, _ = generate_captions(60, seed=4)
    captions = captions[:180] + ["", "same words here", "same words here"]
    py = _py_sets(captions, n)
    brute = {(i, j) for i, j in itertools.combinations(range(len(captions)), 2)
             if py[i] and py[j] and len(py[i] & py[j]) / len(py[i] | py[j]) >= overlap}
    sets = ngram_sets(captions, n)
    cand = candidate_pairs(sets, overlap, max_df=10_000, pair_budget=1e9)
    a, b, skipped = cand.a, cand.b, cand.skipped_ngrams
    sim = jaccard_of_pairs(sets, a, b)
    found = {(int(x), int(y)) for x, y, s in zip(a, b, sim, strict=True) if s >= overlap}
    assert skipped == 0 and found == brute and len(brute) > 0
    for x, y, s in zip(a[:50], b[:50], sim[:50], strict=True):
        assert s == pytest.approx(len(py[x] & py[y]) / len(py[x] | py[y]))


@pytest.mark.parametrize("max_df", [10_000, 3])
def test_candidates_of_queries_are_the_candidates_that_hold_a_query(max_df):
    """The same pairs as `candidate_pairs` restricted to the queries, with the cap binding or not."""
    captions, _ = generate_captions(80, seed=5)
    captions += ["", "same words here", "same words here"]
    sets = ngram_sets(captions, 1)
    full = candidate_pairs(sets, 0.3, max_df=max_df, pair_budget=1e9)
    queries = np.random.default_rng(0).random(len(captions)) < 0.25
    queries[-2] = True
    of = candidate_pairs_of(sets, 0.3, queries, max_df=max_df, pair_budget=1e9, chunk_pairs=7)
    keep = queries[full.a] | queries[full.b]
    assert keep.any() and (~keep).any()
    assert np.array_equal(of.a, full.a[keep]) and np.array_equal(of.b, full.b[keep])
    assert (of.skipped_ngrams, of.max_df_used) == (full.skipped_ngrams, full.max_df_used)


def test_effective_cap_admits_the_shortest_lists_within_the_budget():
    counts = np.array([2, 2, 3, 5, 10, 40])  # pairs: 1, 1, 3, 10, 45, 780
    assert _effective_cap(counts, max_df=500, budget=5) == 3
    assert _effective_cap(counts, max_df=500, budget=60) == 10
    assert _effective_cap(counts, max_df=500, budget=1e9) == 40
    assert _effective_cap(counts, max_df=7, budget=1e9) == 5
    assert _effective_cap(np.array([50, 50]), max_df=500, budget=10) == 1


def test_pair_budget_bounds_candidates_and_skips_only_common_ngrams():
    captions, _ = generate_captions(400, seed=2)
    sets = ngram_sets(captions, 3)
    full = candidate_pairs(sets, 0.3, max_df=10_000, pair_budget=1e9)
    full_pairs = list(zip(full.a.tolist(), full.b.tolist(), strict=True))
    full_links = {p for p, s in zip(full_pairs, jaccard_of_pairs(sets, full.a, full.b), strict=True) if s >= 0.3}
    for budget in (3, 10):
        capped = candidate_pairs(sets, 0.3, max_df=10_000, pair_budget=budget)
        assert full.skipped_ngrams == 0 < capped.skipped_ngrams and capped.max_df_used < full.max_df_used
        assert capped.a.size <= (budget + SN_HASHES * SN_WINDOW) * len(captions)
        pairs = list(zip(capped.a.tolist(), capped.b.tolist(), strict=True))
        links = {p for p, s in zip(pairs, jaccard_of_pairs(sets, capped.a, capped.b), strict=True) if s >= 0.3}
        assert set(pairs) <= set(full_pairs) and links <= full_links
    # at 10 pairs per caption only trigrams held by > 19 captions are unpaired: ~no link is lost
    assert len(links) >= 0.99 * len(full_links)


def test_stable_cluster_ids_are_the_smallest_member():
    ids = ["d", "b", "a", "c", "e"]
    cid, size = stable_cluster_ids(ids, np.array([0, 1, 0, 1, 2]))
    assert cid.tolist() == ["a", "b", "a", "b", "e"] and size.tolist() == [2, 2, 2, 2, 1]


def test_baseline_cli_links_the_test_split(synth_dir, tmp_path, capsys):
    out = tmp_path / "jaccard"
    code = cli.main(["baseline", "--archive", str(synth_dir / "test"), "--val", str(synth_dir / "val"),
                     "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    info = json.loads((out / "links.json").read_text())
    assert info["method"] == "jaccard" and info["n"] in (1, 2, 3, 4, 5) and 0 < info["overlap"] < 1
    assert info["pair_budget"] == 30.0 and 2 <= info["max_df_used"] <= info["max_df"]
    assert f"ARI on {synth_dir / 'test'}: {info['ari']:.4f}" in printed
    assert info["ari"] > 0.3
    clusters = pq.read_table(out / "clusters.parquet")
    archive_ids = read_archive(str(synth_dir / "test")).column("clipping_id").to_pylist()
    assert sorted(clusters.column("clipping_id").to_pylist()) == sorted(archive_ids)
    members: dict[str, list[str]] = {}
    for cid, cl in zip(clusters.column("clipping_id").to_pylist(), clusters.column("cluster_id").to_pylist(),
                       strict=True):
        members.setdefault(cl, []).append(cid)
    assert all(cl == min(m) for cl, m in members.items())
    sizes = dict(zip(clusters.column("cluster_id").to_pylist(), clusters.column("cluster_size").to_pylist(),
                     strict=True))
    assert all(sizes[cl] == len(m) for cl, m in members.items())
    assert cli.main(["evaluate", "--links", str(out), "--archive", str(synth_dir / "test")]) == 0
    assert json.loads((out / "metrics.json").read_text())["ari"] == pytest.approx(info["ari"])


def test_baseline_rejects_bad_max_df(synth_dir, tmp_path, capsys):
    code = cli.main(["baseline", "--archive", str(synth_dir / "test"), "--val", str(synth_dir / "val"),
                     "--out", str(tmp_path), "--max-df", "1"])
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        "clippings baseline: error: The 'max_df' parameter of baseline must be an int in the range [2, inf). "
        "Got 1 instead."
    )
    code = cli.main(["baseline", "--archive", str(synth_dir / "test"), "--val", str(synth_dir / "val"),
                     "--out", str(tmp_path), "--pair-budget", "0.5"])
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        "clippings baseline: error: The 'pair_budget' parameter of baseline must be a float in the range "
        "[1.0, inf). Got 0.5 instead."
    )
