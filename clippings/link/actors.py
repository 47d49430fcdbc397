"""The cell-by-cell IVF range search spread over Ray actors (`clippings link --search-actors N`).

The driver trains and fills the index once and writes it to a file (`save_index`: a local folder, or
`s3://` for a cluster whose machines share no disk); each actor loads it from that path (memory-mapped
where the file is local, so actors on one machine share its pages) — never through the object store — and
searches the batches of cells it is sent. Each batch's pairs come back folded into a minimum spanning forest
(≤ n − 1 edges however many pairs), and the driver folds those into its own forest: the same single linkage
as one process, because each query's search does not depend on who runs it (tested: identical clusters).

Local mode and a cluster run the same code; actors take `cpus` CPUs each (fractional on a small machine:
platform.md's deadlock trap) and size their thread pools to it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable

import numpy as np

from clippings.link.cells import IndexLists, Probes, search_cells
from clippings.link.slink import ForestBuffer

INDEX_FILE = "ivf.faiss"


def save_index(index, folder: str) -> str:
    """Write a FAISS index to `folder`/ivf.faiss (local or s3://); returns its path. Local: written in
    place; S3: through a local temporary file (FAISS writes files, not streams). Cost: the index's size."""
    import faiss

    from clippings.archive import filesystem, is_remote, join

    path = join(folder, INDEX_FILE)
    if not is_remote(path):
        os.makedirs(folder, exist_ok=True)
        faiss.write_index(index, path)
        return path
    fs, inner = filesystem(path)
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, INDEX_FILE)
        faiss.write_index(index, local)
        fs.put_file(local, inner)
    return path


def load_index(path: str):
    """A FAISS index from `path`: memory-mapped when local (pages shared by the processes of one machine
    and left in the page cache), downloaded to a local temporary file first when on S3."""
    import faiss

    from clippings.archive import filesystem, is_remote

    if is_remote(path):
        fs, inner = filesystem(path)
        local = os.path.join(tempfile.mkdtemp(prefix="clippings-index-"), INDEX_FILE)
        fs.get_file(inner, local)
        path = local
    return faiss.read_index(path, faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)


class CellSearcher:
    """A Ray actor holding the IVF index (loaded from its path) that searches batches of cells."""

    def __init__(self, index_path: str, cpus: float):
        import faiss

        from clippings.raylocal import threads_for

        faiss.omp_set_num_threads(threads_for(cpus))
        self.lists = IndexLists(load_index(index_path))

    def search(self, probes: Probes, batches: list[tuple[int, int]], threshold: float, max_edges: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
        """search_cells over `batches`: (src, dst, distance, compactions, queries)."""
        return search_cells(self.lists, probes, batches, threshold, max_edges, forest=True)

    def where(self) -> str:
        """The file clippings was imported from (a check that actors run this tree's code)."""
        import clippings

        return clippings.__file__


def actor_cpus(actors: int) -> float:
    """CPUs per search actor: the cluster's CPUs shared evenly, no more than the largest machine has (an
    actor lives on one machine), a whole number when at least 1, else a fraction (on a machine with fewer
    CPUs than actors: nothing then waits for a CPU that never frees up)."""
    import ray

    total = float(ray.cluster_resources().get("CPU", 1.0))
    largest = max((node["Resources"].get("CPU", 0.0) for node in ray.nodes() if node.get("Alive")), default=total)
    share = min(total / max(1, actors), largest)
    return float(int(share)) if share >= 1 else max(0.25, round(share, 2))


def search_with_actors(index_path: str, n: int, probes: Probes, shards: list[list[tuple[int, int]]],
                       threshold: float, actors: int, max_edges: int,
                       progress: Callable[[int], None] | None = None) -> tuple[np.ndarray, ...]:
    """Search `shards` (lists of cell batches) on `actors` Ray actors, each loading the index from
    `index_path`; fold their forests into one: (src, dst, distance, compactions, actors used).

    Shards are handed out as actors free up (ray.wait), so a slower machine takes fewer. The probe table
    (2·n·(nprobe + 1) int32) travels once through the object store (read in place by the actors of one
    machine); the index does not.
    Memory in the driver: O(n + max_edges) for the merged forest.
    """
    import ray

    from clippings.raylocal import init_ray, runtime_env

    init_ray()
    cpus = actor_cpus(actors)
    remote = ray.remote(num_cpus=cpus, runtime_env=runtime_env(cpus))(CellSearcher)
    pool = [remote.remote(index_path, cpus) for _ in range(actors)]
    probes_ref = ray.put(probes)
    buffer = ForestBuffer(n, max_edges, unique=True)  # each pair comes from one shard only (cells.query)
    pending: dict = {}
    queue = list(shards)
    compactions = 0
    try:
        for actor in pool:
            if queue:
                pending[actor.search.remote(probes_ref, queue.pop(0), threshold, max_edges)] = actor
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            actor = pending.pop(done[0])
            src, dst, dist, comp, queries = ray.get(done[0])
            buffer.add(src, dst, dist)
            compactions += comp
            if progress is not None:
                progress(queries)
            if queue:
                pending[actor.search.remote(probes_ref, queue.pop(0), threshold, max_edges)] = actor
    finally:
        for actor in pool:
            ray.kill(actor)
    src, dst, dist = buffer.result()
    return src, dst, dist, compactions + buffer.compactions, len(pool)
