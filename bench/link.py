"""Exact single linkage vs DBSCAN(min_samples=1, metric='cosine'), the one-sweep ARI curve vs the
reference tuning protocol (one clustering per candidate threshold), and `link --add` of a 1 % batch vs a
full re-link, measured side by side in one run.

    python -m bench.link [--quick] [--big N] [--sizes 10000,50000] [--add-sizes 100000]

Data: clustered unit vectors with a heavy tail of group sizes (Zipf, capped at 400: many groups larger than
k = 20), members at cosine distance ~0.1 from each other, groups ~1 apart; t = 0.3. Each method runs in its
own subprocess; time is wall-clock; memory is the method's own working set: the subprocess's RSS, sampled
every 5 ms by this process, at its peak less the RSS the subprocess had once its imports (faiss, scipy,
sklearn) and its input were loaded (ru_maxrss would read 0 for a method whose peak stays under the
high-water mark loading already set). The machine's load average is printed with each table: on a shared
machine every time is inflated alike. Clusters of every method are checked equal to DBSCAN's (ARI = 1.0
asserted). Sizes: 10k and 50k at d = 512 (--quick: 2k and 5k); ours alone on --big N vectors at d = 256
with the IVF index, recall of within-t pairs measured on a sample (default 1M; 0 skips).

Adding a batch: 1 % of the rows (drawn at random, so most join existing groups) are held out, the other
99 % linked into a links folder, then the 1 % added with `link --add`, against a full re-link of all rows:
exact (pruned links, flat search of the new rows) at --add-sizes × 512, clusters asserted identical; IVF at
--big × 256 (the full re-link is the IVF run above), cluster agreement reported. Both sides are timed as
compute alone (the library call on data in memory) and end to end (reading the embeddings or the links
folder, writing the new links folder); their memory counts the inputs they read (baseline after imports).

At scale (`--scale N,…`): ours, the cell-by-cell ivf search (in one process, and with --search-actors N: on N
Ray actors, the driver reading and placing every row, up to --actors-max; and the link spread over Ray, every
pass over the rows in tasks), beside the peer, FAISS's own `IndexIVFFlat` with `range_search` at radius 1 − t at the nlist and
nprobe ours chose (up to --faiss-max rows), each reading the same pooled rows memory-mapped; recall of
within-t pairs on a sample for both.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

THRESHOLD = 0.3


def make_data(n: int, dim: int, seed: int = 0, noise: float = 0.33) -> tuple[np.ndarray, np.ndarray]:
    """n unit vectors in groups of Zipf(1.8) sizes (≤ 400) around random centres; returns (x, group)."""
    rng = np.random.default_rng(seed)
    sizes = np.minimum(rng.zipf(1.8, size=n), 400)  # more than enough groups; keep those covering n
    last = int(np.searchsorted(np.cumsum(sizes), n))
    sizes = sizes[: last + 1]
    sizes[-1] -= int(sizes.sum()) - n
    group = np.repeat(np.arange(len(sizes)), sizes)
    centres = rng.normal(size=(len(sizes), dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = np.empty((n, dim), dtype=np.float32)
    scale = np.float32(noise / np.sqrt(dim))
    for start in range(0, n, 65536):  # in chunks: no float64 n × d temporary
        rows = group[start : start + 65536]
        x[start : start + len(rows)] = centres[rows] + scale * rng.standard_normal(
            (len(rows), dim), np.float32
        )
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, group


def _rss() -> int:
    """Resident set size of this process in bytes (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _mark_baseline(out: str) -> None:
    """Tell the sampling parent that loading is done: the RSS from here on is the method's own."""
    with open(out + ".base", "w") as f:
        f.write(str(_rss()))


def _worker(method: str, data: str, out: str, nlist: int | None = None, nprobe: int | None = None) -> None:
    """Run one method on the saved vectors; write labels and a JSON record (seconds)."""
    import faiss  # noqa: F401 - imported before the baseline, like sklearn for DBSCAN
    from scipy.sparse.csgraph import connected_components  # noqa: F401 - imported before the baseline
    from sklearn.cluster import DBSCAN

    from clippings.link.knn import knn_graph
    from clippings.link.slink import components, mst_from_graph
    from clippings.link.tune import ari_curve

    record: dict = {}
    if method.startswith("scale-"):
        _scale_worker(method, data, out, nlist, nprobe)
        return
    if method.startswith(("relink-", "base-", "add")):
        _link_worker(method, data, out)
        return
    x = np.load(data)
    _mark_baseline(out)
    start = time.perf_counter()
    if method == "dbscan":
        labels = DBSCAN(eps=THRESHOLD, min_samples=1, metric="cosine").fit(x).labels_
    else:
        index = {"ours-flat": "flat", "ours-pruned": "pruned"}[method]
        graph = knn_graph(x, k=20, threshold=THRESHOLD, index=index, recall_sample=1000)
        mst = mst_from_graph(graph.n, graph.src, graph.dst, graph.distance)
        labels = components(mst, THRESHOLD)
        record.update(recall=graph.recall, exact_up_to=graph.exact_up_to, stats=graph.stats)
        if method == "ours-flat":  # the whole exact ARI curve, against the groups as labels
            t0 = time.perf_counter()
            group = np.load(data.replace(".npy", "-groups.npy"))
            thresholds, _ = ari_curve(mst, group, max_threshold=graph.exact_up_to)
            record.update(curve_s=time.perf_counter() - t0, curve_points=len(thresholds))
    record["seconds"] = time.perf_counter() - start
    record["load"] = os.getloadavg()[0]
    np.save(out + ".npy", labels)
    with open(out + ".json", "w") as f:
        json.dump(record, f, default=float)


def _link_worker(method: str, data: str, out: str) -> None:
    """`relink-INDEX`/`base-INDEX`: link the embeddings folder `data` into links folder `out`; `add`: add the
    embeddings folder `data` to the links folder `out + '.to'`, into `out`. Times compute and end to end."""
    from clippings.embeddings import read_embeddings
    from clippings.link.incremental import add_batch, check_batch, read_linking
    from clippings.link.pipeline import link_embeddings, write_links

    _mark_baseline(out)
    start = time.perf_counter()
    new = read_embeddings(data)
    if method == "add":
        old = read_linking(out + ".to")
        check_batch(old, new, data)
        t0 = time.perf_counter()
        result = add_batch(old, new)
    else:
        t0 = time.perf_counter()
        result = link_embeddings(new, THRESHOLD, 0.5, k=20, index=method.split("-", 1)[1])
    compute = time.perf_counter() - t0
    del new
    write_links(out, result)
    info = result.info
    record = {
        "seconds": compute,
        "total_s": time.perf_counter() - start,
        "recall": info["adds"][-1]["recall"] if method == "add" else info["recall"],
        "stats": info["adds"][-1] if method == "add" else info["graph"],
        "timings": info.get("timings", {}),
        "clusters": info["counts"]["clusters"],
        "load": os.getloadavg()[0],
    }
    with open(out + ".json", "w") as f:
        json.dump(record, f, default=float)


def write_scale_embeddings(path: str, n: int, dim: int = 256, seed: int = 1, chunk: int = 500_000,
                           noise: float = 0.33) -> str:
    """make_data's model (Zipf(1.8) groups ≤ 400, rows in group order) written chunk by chunk straight to an
    embeddings dataset with float16 towers (image = text, so the pooled vector is the row): never more than
    one chunk in memory, 2·n·d bytes on disk per tower."""
    from clippings.embeddings import embeddings_table
    from clippings.storage import write_table_atomic

    rng = np.random.default_rng(seed)
    sizes = np.minimum(rng.zipf(1.8, size=n), 400)
    sizes = sizes[: int(np.searchsorted(np.cumsum(sizes), n)) + 1]
    sizes[-1] -= int(sizes.sum()) - n
    group = np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)
    os.makedirs(path, exist_ok=True)
    centres: dict[int, np.ndarray] = {}
    scale = np.float32(noise / np.sqrt(dim))
    for part, start in enumerate(range(0, n, chunk)):
        rows = group[start : start + chunk]
        first, last = int(rows[0]), int(rows[-1])
        carried = centres.get(first)
        c = rng.normal(size=(last - first + 1, dim)).astype(np.float32)
        if carried is not None:
            c[0] = carried
        c /= np.linalg.norm(c, axis=1, keepdims=True)
        centres = {last: c[-1]}
        x = c[rows - first] + scale * rng.standard_normal((len(rows), dim), np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        ids = [f"r{i:08d}" for i in range(start, start + len(rows))]
        table = embeddings_table(ids, x, x, "bench@0", "bench", dtype="float16")
        write_table_atomic(table, os.path.join(path, f"part-{part:05d}.parquet"))
    return path


def _scale_worker(method: str, data: str, out: str, nlist: int | None = None, nprobe: int | None = None) -> None:
    """`scale-cells` / `scale-actorsN`: clippings' ivf link (on N Ray actors), which writes the links folder
    `out`; `scale-faiss`: the peer, FAISS's own `IndexIVFFlat` (inner product on the unit rows) and its
    `range_search` at radius 1 − t, at the `nlist` and `nprobe` ours chose, its pairs folded into a spanning
    forest as ours are. All read the pooled rows memory-mapped, so the rows differ in the search alone.
    Links the embeddings `data` at t = THRESHOLD."""
    from clippings.embeddings import read_pooled

    if "actors" in method or "spread" in method:
        from clippings.raylocal import init_ray

        init_ray()  # before the baseline: starting Ray is not the method's working set
    _mark_baseline(out)
    start = time.perf_counter()
    if "spread" in method:
        _spread_worker(int(method.rsplit("spread", 1)[1]), data, out, start)
        return
    emb = read_pooled(data, 0.5)
    t0 = time.perf_counter()
    if method == "scale-faiss":
        record = _faiss_ivf(emb.vectors, nlist, nprobe)
        record["seconds"] = time.perf_counter() - t0
    else:
        from clippings.link.pipeline import link_embeddings, write_links

        actors = int(method.rsplit("actors", 1)[1]) if "actors" in method else 0
        result = link_embeddings(emb, THRESHOLD, 0.5, index="ivf", search_actors=actors)
        record = {"seconds": time.perf_counter() - t0}
        write_links(out, result)
        info = result.info
        record.update(recall=info["recall"], search=info["search"], timings=info["timings"],
                      probes={key: info["graph"].get(key) for key in ("probe_margin", "mean_probes")},
                      clusters=info["counts"]["clusters"], edges=info["counts"]["graph_edges"])
    record.update(total_s=time.perf_counter() - start, read_s=t0 - start, load=os.getloadavg()[0])
    with open(out + ".json", "w") as f:
        json.dump(record, f, default=float)


def _spread_worker(actors: int, data: str, out: str, start: float) -> None:
    """`scale-spreadN`: the link spread over Ray (clippings.link.spread: reading, placing and searching in
    tasks and N actors) of the embeddings `data`, its links folder written to `out`; reading is inside."""
    from clippings.link.pipeline import write_links
    from clippings.link.spread import embeddings_parts, spread_folder, spread_link

    with spread_folder(None) as folder:
        result = spread_link(data, embeddings_parts(data), THRESHOLD, 0.5, folder, actors)
        seconds = time.perf_counter() - start
        write_links(out, result)
    info = result.info
    record = {"seconds": seconds, "recall": info["recall"], "search": info["search"], "timings": info["timings"],
              "probes": {key: info["graph"].get(key) for key in ("probe_margin", "mean_probes")},
              "clusters": info["counts"]["clusters"], "edges": info["counts"]["graph_edges"],
              "total_s": time.perf_counter() - start, "read_s": info["timings"]["read_s"],
              "load": os.getloadavg()[0]}
    with open(out + ".json", "w") as f:
        json.dump(record, f, default=float)


def _faiss_ivf(x: np.ndarray, nlist: int, nprobe: int, batch: int = 16384, sample: int = 1000) -> dict:
    """FAISS's IVF range search of every row of x at t = THRESHOLD: k-means on 64·nlist sampled rows (10
    iterations), every row added, `nprobe` cells probed a query, pairs folded into a spanning forest (memory
    O(n + edges held)); its recall of within-t pairs measured on `sample` rows against brute force."""
    import faiss

    from clippings.link.exact import confirmed_pairs, exact_pairs
    from clippings.link.knn import default_max_edges, range_search_forest
    from clippings.link.pruned import float32_margin, row_norms
    from clippings.link.slink import components, mst_from_graph

    n, dim = x.shape
    timings = {}
    t0 = time.perf_counter()
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.niter = 10
    rng = np.random.default_rng(0)
    index.train(np.ascontiguousarray(x[np.sort(rng.choice(n, size=min(n, 64 * nlist), replace=False))]))
    for first in range(0, n, 1 << 20):
        index.add(np.ascontiguousarray(x[first : first + (1 << 20)]))
    index.nprobe = nprobe
    timings["index_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    norms = row_norms(x)
    src, dst, dist, _ = range_search_forest(index, x, norms, 0, THRESHOLD, batch, default_max_edges(n))
    timings["search_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    rows = np.sort(rng.choice(n, size=min(n, sample), replace=False))
    truth = exact_pairs(x, norms, rows, THRESHOLD)
    lims, sims, labels = index.range_search(np.ascontiguousarray(x[rows]),
                                            float(1.0 - THRESHOLD - 2 * float32_margin(dim)))
    a, b, _ = confirmed_pairs(x, norms, np.repeat(rows, np.diff(lims.astype(np.int64))),
                              labels.astype(np.int64), sims, THRESHOLD)
    recall = float(np.isin(truth, a * n + b).mean()) if len(truth) else 1.0
    timings["recall_s"] = time.perf_counter() - t0
    clusters = len(np.unique(components(mst_from_graph(n, src, dst, dist), THRESHOLD)))
    return {"recall": recall, "search": {"backend": "faiss IndexIVFFlat", "nlist": nlist, "nprobe": nprobe,
                                         "actors": 0},
            "timings": {key: round(v, 3) for key, v in timings.items()}, "clusters": clusters,
            "edges": int(len(src))}


def _memory(pid: int | str) -> tuple[int, int]:
    """(RssAnon, RssFile + RssShmem) of a process in bytes: its own heap vs. mapped file pages (page cache,
    reclaimable: the mapped pooled rows, the actors' memory-mapped lists)."""
    anon = file = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                anon = int(line.split()[1]) * 1024
            elif line.startswith(("RssFile:", "RssShmem:")):
                file += int(line.split()[1]) * 1024
    return anon, file


PSS_EVERY_S = 10.0
"""Seconds between PSS reads: the kernel walks every mapped page of a process for one, which at 10M took time
from the run it measures (docs/benchmarks.md#linking-at-scale-10m-in-139-minutes-end-to-end-the-products-block-reused);
the mapped pages grow and then hold through a search, so a read every 10 s still sees their peak."""


def _pss_file(pid: int | str) -> int:
    """Pss_File + Pss_Shmem of a process in bytes: its mapped file pages, each page shared by k processes
    counted 1/k, so the sum over the driver and its actors counts the lists file once, not once per actor.
    Read every PSS_EVERY_S only: the kernel walks every mapped page to compute it."""
    pss = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith(("Pss_File:", "Pss_Shmem:")):
                pss += int(line.split()[1]) * 1024
    return pss


SPREAD_TITLES = (b"CellSearcher", b"read_part", b"part_pairs", b"place_part", b"part_probe_rows")
"""Process titles of the link's Ray workers: the search actors, and the spread link's tasks while they run."""


def _actor_pids() -> list[str]:
    """Ray workers of the link, search actors and spread tasks (their process title names them)."""
    pids = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    line = f.read()
                    if any(title in line for title in SPREAD_TITLES):
                        pids.append(pid)
            except OSError:
                pass
    return pids


def _sampled_memory(proc: subprocess.Popen, base_file: str, timeout: float) -> tuple[float, float, float]:
    """Peak (anon, file, file PSS) MB of `proc` plus its search actors, anon above the baseline it writes to
    base_file. Anon and file sampled every 50 ms (at 10M, sampling every 20 ms took 13 % of a core from the
    run it measured), the actors found every 2 s, file PSS read every PSS_EVERY_S."""
    peak_anon = peak_file = peak_pss = base = 0
    actors: list[str] = []
    deadline, next_scan, next_pss = time.monotonic() + timeout, 0.0, 0.0
    while proc.poll() is None:
        if time.monotonic() > deadline:
            proc.kill()
            raise subprocess.TimeoutExpired(proc.args, timeout)
        if os.path.exists(base_file):
            if not base:
                base = _memory(proc.pid)[0]
            if time.monotonic() > next_scan:
                actors, next_scan = _actor_pids(), time.monotonic() + 2.0
            read_pss = time.monotonic() > next_pss
            if read_pss:
                next_pss = time.monotonic() + PSS_EVERY_S
            anon = file = pss = 0
            for pid in [proc.pid, *actors]:
                try:
                    a, f = _memory(pid)
                    pss += _pss_file(pid) if read_pss else 0
                except (OSError, ValueError):
                    continue
                anon, file = anon + a, file + f
            peak_anon, peak_file = max(peak_anon, anon - base), max(peak_file, file)
            peak_pss = max(peak_pss, pss)
        time.sleep(0.05)
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, proc.args)
    return peak_anon / 2**20, peak_file / 2**20, peak_pss / 2**20


def _scale_rows(sizes: list[int], faiss_max: int, cells_max: int, actors: int, tmp: str,
                data_dir: str | None = None, actors_max: int = 0) -> None:
    """For each n: write the data to disk in chunks (or reuse it from `data_dir`, where a finished write is
    kept), then link it with the cell-by-cell search in one process (n ≤ cells_max, 0: any n), (actors > 0)
    the same on Ray actors (n ≤ actors_max) and spread over Ray (every n), and FAISS's IVF range search at the nlist and nprobe ours chose (n ≤ faiss_max;
    after one of ours); print one table."""
    import shutil

    rows = []
    for n in sizes:
        data = os.path.join(data_dir or tmp, f"scale{n}")
        if not os.path.exists(data + ".complete"):
            shutil.rmtree(data, ignore_errors=True)  # a write cut short
            write_scale_embeddings(data, n)
            if data_dir:
                open(data + ".complete", "w").close()
        methods = ["scale-cells"] if not cells_max or n <= cells_max else []
        methods += [f"scale-actors{actors}"] if actors and n <= actors_max else []
        methods += [f"scale-spread{actors}"] if actors else []
        methods += ["scale-faiss"] if methods and n <= faiss_max else []
        ours: dict = {}
        for method in methods:
            out = os.path.join(tmp, f"{method}-{n}")
            probes = ["--nlist", str(ours["nlist"]), "--nprobe", str(ours["nprobe"])] if ours else []
            proc = subprocess.Popen([sys.executable, "-m", "bench.link", "--worker", method, "--data", data,
                                     "--out", out, *probes])
            memory = _sampled_memory(proc, out + ".base", 4 * 3600)
            with open(out + ".json") as f:
                rec = json.load(f)
            rows.append((n, method, rec, *memory))
            ours = ours or rec["search"]
            _print_scale(rows[-1])
            shutil.rmtree(out, ignore_errors=True)
        if not data_dir:
            shutil.rmtree(data, ignore_errors=True)
    print(f"\nivf linking at scale, d=256, t={THRESHOLD}; load average now {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} CPUs. anon MB = the method's own heap (RssAnon above its baseline, actors included); "
          "file MB = mapped file pages (page cache: reclaimable), summed over processes; PSS = the same with each "
          "shared page counted once")
    for row in rows:
        _print_scale(row)


def _print_scale(row: tuple) -> None:
    n, method, rec, anon, file, pss = row
    search = rec["search"]
    print(f"{n:>11,} {method:<14} {rec['seconds']:>8.1f} s (e2e {rec['total_s']:>7.1f} s, read "
          f"{rec['read_s']:>6.1f} s) anon {anon:>7.0f} MB file {file:>7.0f} MB (PSS {pss:>7.0f}) "
          f"recall {rec['recall']:.4f} "
          f"nlist {search.get('nlist')} nprobe {search.get('nprobe')} {rec.get('probes', {})} "
          f"actors {search.get('actors')} "
          f"load {rec['load']:.1f}", flush=True)
    print(f"      timings {rec['timings']}", flush=True)


def _sampled_peak(proc: subprocess.Popen, base_file: str, timeout: float) -> tuple[float, float]:
    """Peak RSS of `proc` in MB, sampled every 5 ms: (the whole process's from its start, the part above the
    baseline it writes to `base_file` once its imports and input are loaded)."""
    statm = f"/proc/{proc.pid}/statm"
    page = os.sysconf("SC_PAGE_SIZE")
    peak = peak_loaded = 0
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if time.monotonic() > deadline:
            proc.kill()
            raise subprocess.TimeoutExpired(proc.args, timeout)
        try:
            with open(statm) as f:
                rss = int(f.read().split()[1]) * page
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            rss = 0  # exited between poll and read
        peak = max(peak, rss)
        if os.path.exists(base_file):
            peak_loaded = max(peak_loaded, rss)
        time.sleep(0.005)
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, proc.args)
    with open(base_file) as f:
        return peak / 2**20, max(0, peak_loaded - int(f.read())) / 2**20


def _run(method: str, data: str, tmp: str, timeout: float, out: str | None = None) -> tuple[dict, np.ndarray]:
    out = out or os.path.join(tmp, method)
    proc = subprocess.Popen([sys.executable, "-m", "bench.link", "--worker", method, "--data", data, "--out", out])
    peak = _sampled_peak(proc, out + ".base", timeout)[1]
    with open(out + ".json") as f:
        record = json.load(f)
    record["peak_extra_mb"] = peak
    labels = np.load(out + ".npy") if os.path.exists(out + ".npy") else np.empty(0)
    return record, labels


def _write_embeddings(path: str, ids: np.ndarray, x: np.ndarray) -> str:
    """An embeddings dataset whose two towers are both x (so the pooled vector is x)."""
    from clippings.embeddings import embeddings_table
    from clippings.storage import write_dataset

    write_dataset(embeddings_table(ids.tolist(), x, x, "bench@0", "bench"), path, rows_per_part=100_000)
    return path


def _add_row(x: np.ndarray, index: str, tmp: str, name: str, relink: tuple[dict, str] | None = None) -> dict:
    """Hold out 1 % of x, link the rest with `index`, add the 1 %, and (unless given) re-link all of x.
    Returns the records and the fraction of rows whose cluster id is the same in both."""
    import pyarrow.parquet as pq

    n = len(x)
    ids = np.array([f"r{i:08d}" for i in range(n)], dtype=object)
    new = np.sort(np.random.default_rng(n).choice(n, size=max(1, n // 100), replace=False))
    old = np.setdiff1d(np.arange(n), new)
    emb_old = _write_embeddings(os.path.join(tmp, f"{name}-old"), ids[old], x[old])
    emb_new = _write_embeddings(os.path.join(tmp, f"{name}-new"), ids[new], x[new])
    links = os.path.join(tmp, f"{name}-links")
    _run(f"base-{index}", emb_old, tmp, 7200, out=links + ".to")
    add, _ = _run("add", emb_new, tmp, 7200, out=links)
    if relink is None:
        emb_all = _write_embeddings(os.path.join(tmp, f"{name}-all"), ids, x)
        full, _ = _run(f"relink-{index}", emb_all, tmp, 7200, out=os.path.join(tmp, f"{name}-relink"))
        full_links = os.path.join(tmp, f"{name}-relink")
    else:
        full, full_links = relink
    ours = pq.read_table(os.path.join(links, "clusters.parquet"))
    ref = pq.read_table(os.path.join(full_links, "clusters.parquet"))
    same = float(np.mean(ours["cluster_id"].to_numpy(zero_copy_only=False) == ref["cluster_id"].to_numpy(
        zero_copy_only=False)))
    return {"n": n, "new": len(new), "index": index, "add": add, "full": full, "same": same}


def _print_add_rows(rows: list[dict]) -> None:
    print(
        f"\nlink --add of a 1 % batch vs a full re-link at t={THRESHOLD}; load average {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} CPUs"
    )
    print(
        f"{'n':>9} {'d':>4} {'index':<7} {'new':>6} {'add s':>7} {'re-link s':>10} {'ratio':>7} "
        f"{'add e2e s':>10} {'re-link e2e':>12} {'ratio':>7} {'add MB':>7} {'re-link MB':>11} "
        f"{'same id':>8} {'recall':>7}"
    )
    for r in rows:
        add, full = r["add"], r["full"]
        recall = "" if add["recall"] is None else f"{add['recall']:.4f}"
        print(
            f"{r['n']:>9,} {r['d']:>4} {r['index']:<7} {r['new']:>6,} {add['seconds']:>7.2f} "
            f"{full['seconds']:>10.1f} {add['seconds'] / full['seconds']:>7.3f} {add['total_s']:>10.2f} "
            f"{full['total_s']:>12.1f} {add['total_s'] / full['total_s']:>7.3f} {add['peak_extra_mb']:>7.0f} "
            f"{full['peak_extra_mb']:>11.0f} {r['same']:>8.4f} {recall:>7}"
        )
        print(f"  add timings {add['stats']['timings']}, load {add['load']:.1f} / {full['load']:.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2k and 5k points, no big run")
    parser.add_argument("--big", type=int, default=1_000_000, help="size of the IVF run at d=256 (0: skip)")
    parser.add_argument(
        "--sizes",
        default="10000,50000",
        help="sizes compared with DBSCAN at d=512 ('': none; --quick: 2000,5000)",
    )
    parser.add_argument(
        "--add-sizes",
        default="100000",
        help="sizes of the exact add-vs-re-link rows at d=512 ('': none; --quick: 5000)",
    )
    parser.add_argument(
        "--scale",
        default="",
        help="sizes of the ivf scale rows at d=256, e.g. 1000000,5000000,10000000: data written to disk in "
        "chunks, the cell-by-cell search beside FAISS's IVF range search ('': none)",
    )
    parser.add_argument("--faiss-max", type=int, default=5_000_000,
                        help="largest n for FAISS's IVF range search beside ours")
    parser.add_argument("--cells-max", type=int, default=0,
                        help="largest n for the cell-by-cell search in one process (0: every n)")
    parser.add_argument("--search-actors", type=int, default=0,
                        help="also run the scale rows on N actors: the link spread over Ray (every n) and the "
                        "search alone on actors, the driver reading and placing (n ≤ --actors-max)")
    parser.add_argument("--actors-max", type=int, default=1_000_000,
                        help="largest n for the search alone on actors beside the spread link")
    parser.add_argument("--data-dir", default=None,
                        help="keep the scale rows' data here and reuse it in later runs (10M: ~14 minutes to "
                        "write, 10 GB; default: a temporary folder, removed)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--nlist", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--nprobe", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args.worker, args.data, args.out, args.nlist, args.nprobe)
        return 0
    from sklearn.metrics import adjusted_rand_score

    sizes = (2_000, 5_000) if args.quick else tuple(int(v) for v in args.sizes.split(",") if v)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        scale = [int(v) for v in args.scale.split(",") if v]
        if scale:
            _scale_rows(scale, args.faiss_max, args.cells_max, args.search_actors, tmp, args.data_dir,
                        args.actors_max)
        for n in sizes:
            x, group = make_data(n, 512, seed=n)
            data = os.path.join(tmp, f"x{n}.npy")
            np.save(data, x)
            np.save(data.replace(".npy", "-groups.npy"), group)
            ref, ref_labels = _run("dbscan", data, tmp, 3600)
            for method in ("ours-flat", "ours-pruned"):
                rec, labels = _run(method, data, tmp, 3600)
                ari = adjusted_rand_score(ref_labels, labels)
                assert ari == 1.0, f"{method} at n={n}: ARI {ari} against DBSCAN"
                rows.append((n, method, rec, ref))
                if method == "ours-flat":
                    protocol = 100_000 * ref["seconds"]
                    rows.append(
                        (
                            n,
                            "tune curve",
                            {
                                "seconds": rec["curve_s"],
                                "peak_extra_mb": float("nan"),
                                "points": rec["curve_points"],
                            },
                            {"seconds": protocol},
                        )
                    )
        print(
            f"\nsingle linkage at t={THRESHOLD} (d=512), vs DBSCAN(min_samples=1, cosine); "
            f"ARI vs DBSCAN = 1.0; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
        )
        print(
            f"{'n':>8} {'method':<12} {'ours s':>9} {'ref s':>10} {'time ratio':>11} {'ours MB':>8} "
            f"{'ref MB':>8} {'mem ratio':>9}"
        )
        for n, method, rec, ref in rows:
            ref_mb = ref.get("peak_extra_mb", float("nan"))
            print(
                f"{n:>8} {method:<12} {rec['seconds']:>9.2f} {ref['seconds']:>10.1f} "
                f"{ref['seconds'] / rec['seconds']:>10.1f}x {rec['peak_extra_mb']:>8.0f} {ref_mb:>8.0f} "
                f"{ref_mb / max(rec['peak_extra_mb'], 1):>8.1f}x"
            )
        print("tune curve: ref = one DBSCAN run × 100,000 candidate thresholds (the reference protocol)")
        for n, method, rec, _ in rows:
            if "stats" in rec:
                stats = {key: v for key, v in rec["stats"].items() if key not in ("k",)}
                print(f"  {n:>8} {method:<12} load {rec['load']:.1f} {stats}")
        for n in (5_000,) if args.quick else tuple(int(v) for v in args.add_sizes.split(",") if v):
            x, _ = make_data(n, 512, seed=n + 1)
            row = _add_row(x, "pruned", tmp, f"add{n}")
            assert row["same"] == 1.0, f"add at n={n}: clusters differ from a full re-link"
            _print_add_rows([{**row, "d": 512}])  # at once: a later failure must not lose it
        if args.big and not args.quick:
            x, _ = make_data(args.big, 256, seed=1)
            ids = np.array([f"r{i:08d}" for i in range(args.big)], dtype=object)
            full_links = os.path.join(tmp, "big-relink")
            rec, _ = _run("relink-ivf", _write_embeddings(os.path.join(tmp, "big-all"), ids, x), tmp, 7200,
                          out=full_links)
            del ids
            stats = rec["stats"]
            print(
                f"\nours, IVF (nlist {stats['nlist']}, nprobe {stats['nprobe']}), n={args.big:,} d=256: "
                f"{rec['seconds']:.1f} s ({rec['total_s']:.1f} s reading the embeddings and writing the links), "
                f"working memory {rec['peak_extra_mb']:.0f} MB (input included), recall of within-t pairs "
                f"{rec['recall']:.4f} (sample of 1000 points vs exact search), {rec['clusters']:,} clusters, "
                f"load {rec['load']:.1f}"
            )
            print(f"  timings {rec['timings']}")
            _print_add_rows([{**_add_row(x, "ivf", tmp, "big", relink=(rec, full_links)), "d": 256}])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
