"""The cell-by-cell IVF range search spread over Ray actors (`clippings link --search-actors N`).

The driver trains the cells once and writes the lists to a folder (clippings.link.cellfile: a local folder,
or `s3://` for a cluster whose machines share no disk); each actor loads them from that folder
(memory-mapped where local, so actors on one machine share their pages) — never through the object store —
and searches the batches of cells it is sent. Each batch's pairs come back folded into a minimum spanning forest
(≤ n − 1 edges however many pairs), and the driver folds those into its own forest: the same single linkage
as one process, because each query's search does not depend on who runs it (tested: identical clusters).

A shard's search is a pure function of the lists, the probes and its cells, so a shard whose actor dies (a
machine pre-empted, a process killed) runs again on a new actor, up to SHARD_TRIES tries; its result is folded
in only from the try that returned it, so the forest counts every shard exactly once (tested: a SIGKILLed
actor leaves the clusters as they were).

Local mode and a cluster run the same code; actors take `cpus` CPUs each (fractional on a small machine:
platform.md's deadlock trap) and size their thread pools to it.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from clippings.errors import BadInput, RunFailed
from clippings.link.cellfile import open_lists, open_part_probes
from clippings.link.cells import Probes, search_cells
from clippings.link.devicecells import products
from clippings.link.exact import cosine_distances_of_pairs
from clippings.link.slink import ForestBuffer

if TYPE_CHECKING:
    from ray.exceptions import RayActorError

SHARD_TRIES = 3
"""Tries a search shard gets, each on a live actor, before the link gives up: enough to ride out a machine or
two lost in a run, few enough that a shard which kills every actor it meets (memory) stops the link soon."""

log = logging.getLogger("clippings.link")


class CellSearcher:
    """A Ray actor holding the IVF lists (mapped from their folder) that searches batches of cells; with
    `owners`, the folder's per-part probes too (a spread link: no probe table travels)."""

    def __init__(self, lists_folder: str, device: str | None = None, owners: np.ndarray | None = None):
        import tempfile

        from clippings.storage import is_remote

        # s3:// lists are downloaded once, to a folder `close` removes
        self.cache = tempfile.mkdtemp(prefix="clippings-cells-") if is_remote(lists_folder) else None
        self.lists = open_lists(lists_folder, self.cache)  # BLAS sizes its threads from the actor's runtime env
        self.probes = None if owners is None else open_part_probes(lists_folder, owners, self.cache)
        self.product = products(device)

    def close(self) -> None:
        """Drop the lists and remove the files downloaded for them."""
        import shutil

        self.lists = self.probes = None
        if self.cache:
            shutil.rmtree(self.cache, ignore_errors=True)

    def search(self, probes: Probes | None, batches: list[tuple[int, int]], threshold: float, max_edges: int
               ) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], tuple[int, int, str]]:
        """search_cells over `batches` (probes None: the actor's own): the forest (src, dst, distance) and
        (compactions, queries, the products this actor runs: "cpu-float32" or "torch-cuda-float16", for
        links.json), two results so the forest can go to a ForestMerger without passing the caller. The
        product's name comes with every result, not from a call of its own, so no extra call can meet a dead
        actor."""
        src, dst, dist, compactions, queries = search_cells(self.lists, probes or self.probes, batches, threshold,
                                                            max_edges, forest=True, product=self.product)
        return (src, dst, dist), (compactions, queries, self.product.name)

    def distances(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        """float64 cosine distances of these pairs (clippings.link.exact.cosine_distances_of_pairs)."""
        return cosine_distances_of_pairs(self.lists, None, src, dst)

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The float32 vectors of these rows."""
        return self.lists.take(rows)

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


@dataclass
class Shard:
    """A search shard: its number (from 1, as messages name it), its cell batches, the tries it has had."""

    number: int
    batches: list[tuple[int, int]]
    tries: int = 0


def retry_or_fail(shard: Shard, shards: int, tries: int, error: RayActorError) -> Shard:
    """The shard whose actor died (`error`), to run again, with a line on the console and in the stage's log;
    RunFailed, one line naming the shard, its tries and what to do, once it has had `tries` tries."""
    how = "was pre-empted" if error.preempted else "died"
    if shard.tries >= tries:
        cells = f"cells {shard.batches[0][0]}–{shard.batches[-1][1] - 1}"
        each = "its only try" if shard.tries == 1 else f"each of its {shard.tries} tries"
        raise RunFailed(
            f"search shard {shard.number} of {shards} ({cells}) lost its search actor in {each} (the last actor "
            f"{how}); if machines were pre-empted, run the link again; if not, an actor likely ran out of memory: "
            "give fewer --search-actors or machines with more memory (the log has Ray's reason)"
        ) from error
    log.warning("link: search shard %d of %d lost its actor (it %s); running it again on a new one (try %d of %d)",
                shard.number, shards, how, shard.tries + 1, tries)
    return shard


class SearchPool:
    """`actors` search actors (CellSearcher) over one lists folder, alive from `open` to `close`: the search,
    then the float64 distances of the edges kept and the vectors the diagnostics read, where the rows are.

    gpu: see actor_device (None: a GPU per actor where the cluster has them; each then multiplies there,
    clippings.link.devicecells). owners: the actors read the folder's per-part probes (a spread link)."""

    def __init__(self, lists_folder: str, actors: int, gpu: bool | None = None, owners: np.ndarray | None = None):
        import ray

        from clippings.raylocal import init_ray, runtime_env

        init_ray()
        cpus = actor_cpus(actors)
        self.device = actor_device(actors, gpu, float(ray.cluster_resources().get("GPU", 0.0)))
        self.remote = ray.remote(num_cpus=cpus, num_gpus=1 if self.device else 0,
                                 runtime_env=runtime_env(cpus))(CellSearcher)
        self.folder, self.owners_ref = lists_folder, None if owners is None else ray.put(owners)
        self.pool = [self._start() for _ in range(actors)]

    def _start(self):
        return self.remote.remote(self.folder, self.device, self.owners_ref)

    def __enter__(self) -> SearchPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Ask each actor to remove what it downloaded (a dead one cannot), then end them."""
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError

        from clippings.storage import is_remote

        try:
            if is_remote(self.folder):  # only then did the actors download anything
                ray.get([actor.close.remote() for actor in self.pool], timeout=60)
        except (RayActorError, GetTimeoutError):
            log.warning("link: a search actor could not remove the lists it downloaded (it had died)")
        for actor in self.pool:
            ray.kill(actor)
        self.pool = []

    def search(self, n: int, probes: Probes | None, shards: list[list[tuple[int, int]]], threshold: float,
               max_edges: int, progress: Callable[[int], None] | None = None, tries: int = SHARD_TRIES,
               sink: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, str]:
        """Search `shards` (lists of cell batches); fold the actors' forests into one: (src, dst, distance,
        compactions, the actors' product name). sink: a ForestMerger actor (clippings.link.merger) that
        folds them instead, straight from the object store; the edges returned are then none.

        Shards are handed out as actors free up (ray.wait), so a slower machine takes fewer. A shard whose
        actor dies runs again at once on a new actor that takes the dead one's place (scheduled by Ray
        wherever the cluster has room); after `tries` tries the link stops with RunFailed (retry_or_fail).
        progress: told each shard's queries once, when its result is folded in. The probe table
        (2·n·(nprobe + 1) int32; None: the actors read theirs from the folder) travels once through the
        object store (read in place by the actors of one machine); the lists do not.
        Memory here: O(n + max_edges) for the merged forest (none with a sink).
        """
        import ray
        from ray.exceptions import RayActorError

        probes_ref = ray.put(probes)
        buffer = ForestBuffer(n, max_edges, unique=True)  # each pair comes from one shard only (cells.query)
        queue = deque(Shard(number, batches) for number, batches in enumerate(shards, start=1))
        pending: dict[Any, tuple[int, Shard, Any]] = {}  # a search's counts → its actor's slot, shard, forest
        compactions, product = 0, ""
        folded: list = []  # the sink's add calls: one that failed (a forest lost with its node) must not pass

        def submit(slot: int) -> None:
            if queue:
                shard = queue.popleft()
                shard.tries += 1
                forest, counts = self.pool[slot].search.options(num_returns=2).remote(probes_ref, shard.batches,
                                                                                      threshold, max_edges)
                pending[counts] = (slot, shard, forest)

        for slot in range(len(self.pool)):
            submit(slot)
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            slot, shard, forest = pending.pop(done[0])
            try:
                comp, queries, product = ray.get(done[0])
            except RayActorError as error:
                if error.actor_init_failed:  # the lists could not be loaded: that error recurs on any actor
                    raise
                queue.appendleft(retry_or_fail(shard, len(shards), tries, error))  # the next shard submitted
                ray.kill(self.pool[slot])
                self.pool[slot] = self._start()
                submit(slot)
                continue
            if sink is None:
                buffer.add(*ray.get(forest))
            else:
                folded.append(sink.add.remote(forest))  # resolved where the merger runs, not in this process
            compactions += comp
            if progress is not None:
                progress(queries)
            submit(slot)
        ray.get(folded)
        src, dst, dist = buffer.result()
        return src, dst, dist, compactions + buffer.compactions, product

    def distances(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        """float64 cosine distances of the pairs (src, dst), computed by the actors from their lists."""
        return searcher_distances(self.pool, src, dst)

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The float32 vectors of these rows, read by the actors."""
        return searcher_take(self.pool, rows)

    __getitem__ = take


def _spread_calls(searchers: list, method: str, arrays: tuple[np.ndarray, ...], chunk: int) -> list:
    """`method` called on chunks of `arrays` over the searchers (CellSearcher actors) in turn; the results in
    chunk order."""
    import ray

    calls = [getattr(searchers[k % len(searchers)], method).remote(*(a[start : start + chunk] for a in arrays))
             for k, start in enumerate(range(0, len(arrays[0]), chunk))]
    return ray.get(calls)


def searcher_distances(searchers: list, src: np.ndarray, dst: np.ndarray, chunk: int = 1 << 20) -> np.ndarray:
    """float64 cosine distances of the pairs (src, dst), computed by these CellSearcher actors."""
    parts = _spread_calls(searchers, "distances", (src, dst), chunk)
    return np.concatenate(parts) if parts else np.empty(0, np.float64)


def searcher_take(searchers: list, rows: np.ndarray) -> np.ndarray:
    """The float32 vectors of these rows, read by these CellSearcher actors."""
    parts = _spread_calls(searchers, "take", (np.asarray(rows, dtype=np.int64),), 1 << 16)
    return np.concatenate(parts) if parts else np.empty((0, 0), np.float32)


def search_with_actors(lists_folder: str, n: int, probes: Probes, shards: list[list[tuple[int, int]]],
                       threshold: float, actors: int, max_edges: int,
                       progress: Callable[[int], None] | None = None, gpu: bool | None = None,
                       tries: int = SHARD_TRIES) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int, str]:
    """Search `shards` (lists of cell batches) on `actors` Ray actors (SearchPool.search), each loading the
    lists from `lists_folder`: (src, dst, distance, compactions, actors used, the actors' product name)."""
    with SearchPool(lists_folder, actors, gpu) as pool:
        src, dst, dist, compactions, product = pool.search(n, probes, shards, threshold, max_edges, progress, tries)
        return src, dst, dist, compactions, len(pool.pool), product
