"""The cell-by-cell IVF range search spread over Ray actors (`clippings link --search-actors N`).

The driver trains the cells once and writes the lists to a folder (clippings.link.cellfile: a local folder,
or `s3://` for a cluster whose machines share no disk); each actor loads them from that folder
(memory-mapped where local, so actors on one machine share their pages) — never through the object store —
and searches the batches of cells it is sent. Each batch's pairs come back folded into a minimum spanning forest
(≤ n − 1 edges however many pairs), and the driver folds those into its own forest: the same single linkage
as one process, because each query's search does not depend on who runs it (tested: identical clusters).

Local mode and a cluster run the same code; actors take `cpus` CPUs each (fractional on a small machine:
platform.md's deadlock trap) and size their thread pools to it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from clippings.errors import BadInput
from clippings.link.cellfile import open_lists
from clippings.link.cells import Probes, search_cells
from clippings.link.slink import ForestBuffer


class CellSearcher:
    """A Ray actor holding the IVF lists (mapped from their folder) that searches batches of cells."""

    def __init__(self, lists_folder: str, device: str | None = None):
        from clippings.link.ivf import products

        self.lists = open_lists(lists_folder)  # BLAS sizes its threads from the actor's runtime env
        self.product = products(device)

    def search(self, probes: Probes, batches: list[tuple[int, int]], threshold: float, max_edges: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
        """search_cells over `batches`: (src, dst, distance, compactions, queries)."""
        return search_cells(self.lists, probes, batches, threshold, max_edges, forest=True, product=self.product)

    def product_name(self) -> str:
        """The products this actor runs ("cpu-float32" or "torch-cuda-float16"), for links.json."""
        return self.product.name

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


def actor_device(actors: int, gpu: bool | None, cluster_gpus: float) -> str | None:
    """The device the search actors multiply on: "cuda" (one GPU each) when the Ray cluster has a GPU for
    every actor, unless `gpu` is False; None (float32 BLAS on their CPUs) otherwise. Decided from the
    cluster's resources, not from the driver's own devices: on a GPU cluster the driver often has none.
    gpu True with fewer GPUs than actors is refused (actors asking for absent GPUs would wait forever)."""
    if gpu is False:
        return None
    if cluster_gpus >= actors:
        return "cuda"
    if gpu:
        raise BadInput(
            f"link --gpu with {actors} search actors needs {actors} GPUs in the Ray cluster, which has "
            f"{cluster_gpus:g}; give fewer --search-actors or drop --gpu"
        )
    return None


def search_with_actors(lists_folder: str, n: int, probes: Probes, shards: list[list[tuple[int, int]]],
                       threshold: float, actors: int, max_edges: int,
                       progress: Callable[[int], None] | None = None, gpu: bool | None = None
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int, str]:
    """Search `shards` (lists of cell batches) on `actors` Ray actors, each loading the lists from
    `lists_folder`; fold their forests into one: (src, dst, distance, compactions, actors used, the actors'
    product name). gpu: see actor_device (None: a GPU per actor where the cluster has them; each then
    multiplies there, clippings.link.devicecells).

    Shards are handed out as actors free up (ray.wait), so a slower machine takes fewer. The probe table
    (2·n·(nprobe + 1) int32) travels once through the object store (read in place by the actors of one
    machine); the lists do not.
    Memory in the driver: O(n + max_edges) for the merged forest.
    """
    import ray

    from clippings.raylocal import init_ray, runtime_env

    init_ray()
    cpus = actor_cpus(actors)
    device = actor_device(actors, gpu, float(ray.cluster_resources().get("GPU", 0.0)))
    remote = ray.remote(num_cpus=cpus, num_gpus=1 if device else 0, runtime_env=runtime_env(cpus))(CellSearcher)
    pool = [remote.remote(lists_folder, device) for _ in range(actors)]
    probes_ref = ray.put(probes)
    buffer = ForestBuffer(n, max_edges, unique=True)  # each pair comes from one shard only (cells.query)
    pending: dict = {}
    queue = list(shards)
    compactions = 0
    try:
        product = ray.get(pool[0].product_name.remote())
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
    return src, dst, dist, compactions + buffer.compactions, len(pool), product
