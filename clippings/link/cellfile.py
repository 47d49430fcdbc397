"""The IVF lists of the cell search as files: the rows in cell order, one float32 `.npy` that is
memory-mapped, never a copy in the heap.

Why not a FAISS IndexIVFFlat: FAISS fills its lists in the heap (n·d·4 bytes: 10 GB at 10M × 256) before
the index can be written and mapped, so the heap's peak would hold a full copy of the vectors besides the
mapped pooled rows. Here the rows are gathered into the file in cell order a chunk at a time, so the heap
holds one chunk; the search reads each list as a slice of the mapped file (clippings.link.cells.PartLists),
and a Ray actor maps the same file (pages shared on one machine) or downloads it once from s3://.

A link spread over a cluster writes the lists part by part instead, each where its part was read
(write_part_lists): `vectors/part-K.arrow` (the part's rows in cell order: clipping_id, vector, cell: the
links folder's own vectors part, carried into it) and `lists/part-K/` (the rows' numbers in that order, where
each cell's run starts, and the part's probes: PART_ARRAYS).

Files in the folder: `cell_rows.npy` (n, d) float32, the rows sorted by cell (stable: ascending row numbers
within a cell); `cell_order.npy` (n,) int64, the row number of each stored row; `cell_starts.npy`
(nlist + 1,) int64, where each cell's run starts.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

from clippings.link.cells import PartLists

FILES = ("cell_rows.npy", "cell_order.npy", "cell_starts.npy")
CHUNK_ROWS = 1 << 16
"""Rows gathered per write: the heap holds this many rows (16 MB at d = 256) while the file fills."""


def cell_layout(assign: np.ndarray, nlist: int) -> tuple[np.ndarray, np.ndarray]:
    """(order, starts) of rows assigned to cells: the row numbers sorted by cell (stable) and where each
    cell's run starts in that order."""
    order = np.argsort(assign, kind="stable").astype(np.int64, copy=False)
    starts = np.searchsorted(assign[order], np.arange(nlist + 1)).astype(np.int64, copy=False)
    return order, starts


def in_memory_lists(x: np.ndarray, assign: np.ndarray, nlist: int) -> PartLists:
    """The lists as a sorted copy of x in the heap (for a small n: no file to write)."""
    order, starts = cell_layout(assign, nlist)
    return PartLists.cell_sorted(np.ascontiguousarray(x[order], dtype=np.float32), order, starts)


def write_lists(x: np.ndarray, assign: np.ndarray, nlist: int, folder: str) -> str:
    """Write the lists of rows x (their cells `assign`) to `folder` (local, or s3:// through a local
    temporary folder); returns the folder. Cost: one gather of every row, CHUNK_ROWS at a time."""
    from clippings.storage import filesystem, is_remote, join

    if not is_remote(folder):
        os.makedirs(folder, exist_ok=True)
        _write_local(x, assign, nlist, folder)
        return folder
    fs, inner = filesystem(folder)
    with tempfile.TemporaryDirectory(prefix="clippings-cells-") as tmp:
        _write_local(x, assign, nlist, tmp)
        for name in FILES:
            fs.put_file(os.path.join(tmp, name), join(inner, name))
    return folder


def _write_local(x: np.ndarray, assign: np.ndarray, nlist: int, folder: str) -> None:
    order, starts = cell_layout(assign, nlist)
    rows = np.lib.format.open_memmap(os.path.join(folder, FILES[0]), mode="w+", dtype=np.float32,
                                     shape=(len(x), x.shape[1]))
    for start in range(0, len(order), CHUNK_ROWS):
        rows[start : start + CHUNK_ROWS] = x[order[start : start + CHUNK_ROWS]]
    rows.flush()
    del rows
    np.save(os.path.join(folder, FILES[1]), order)
    np.save(os.path.join(folder, FILES[2]), starts)


def open_lists(folder: str, cache: str | None = None) -> PartLists:
    """The lists written by write_lists, the rows memory-mapped read-only; a folder of per-part lists
    (write_part_lists) is read part by part. On s3:// the files are downloaded once into local folder `cache`
    (the caller's to remove; required there)."""
    from clippings.storage import join

    if part_numbers(folder):
        return open_part_lists(folder, cache)
    paths = [local_file(join(folder, name), cache) for name in FILES]
    return PartLists.cell_sorted(np.load(paths[0], mmap_mode="r"), np.load(paths[1]), np.load(paths[2]))


def remove_lists(folder: str, given: bool, names: tuple[str, ...] = FILES) -> None:
    """Remove the lists' files (or folders) `names` from `folder` (the folder itself when it was a temporary
    one, not given)."""
    import shutil

    from clippings.storage import filesystem, join

    if not given:
        shutil.rmtree(folder, ignore_errors=True)
        return
    fs, inner = filesystem(folder)
    for name in names:
        if fs.exists(join(inner, name)):
            fs.rm(join(inner, name), recursive=True)


PART_ARRAYS = ("cell_order", "cell_starts", "probe_table", "probe_rows", "probe_starts")
"""Per part: its rows' numbers in cell order (int64) and where each cell's run starts (nlist + 1); its probe
table (rows × nprobe int32, in row order) and its rows grouped by probed cell (int32) with each cell's start
(clippings.link.cells.PartProbes)."""


def part_name(number: int) -> str:
    return f"part-{number:05d}"


def save_array(path: str, array: np.ndarray) -> None:
    """One `.npy` file at `path` (local: written beside and renamed, so a reader never sees half; s3://: one
    upload from a local temporary file)."""
    from clippings.storage import filesystem, is_remote

    if not is_remote(path):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path + ".tmp", "wb") as f:
            np.save(f, array)
        os.replace(path + ".tmp", path)
        return
    fs, inner = filesystem(path)
    with tempfile.NamedTemporaryFile(suffix=".npy") as tmp:
        np.save(tmp, array)
        tmp.flush()
        fs.put_file(tmp.name, inner)


def write_part_lists(folder: str, number: int, arrays: dict[str, np.ndarray]) -> None:
    """Write part `number`'s arrays (PART_ARRAYS) as `.npy` files under `folder/lists/`."""
    from clippings.storage import join

    for name in PART_ARRAYS:
        save_array(join(folder, "lists", part_name(number), name + ".npy"), arrays[name])


def part_numbers(folder: str) -> list[int]:
    """The part numbers of a folder of per-part lists (none: a folder of write_lists or no lists)."""
    from clippings.storage import filesystem, join

    fs, inner = filesystem(folder)
    listed = join(inner, "lists")
    if not fs.isdir(listed):
        return []
    return sorted(int(os.path.basename(p.rstrip("/"))[5:]) for p in fs.ls(listed, detail=False)
                  if os.path.basename(p.rstrip("/")).startswith("part-"))


def local_file(path: str, cache: str | None) -> str:
    """A local path of file `path`: itself when local, else a copy downloaded once into folder `cache`."""
    from clippings.storage import filesystem, is_remote

    if not is_remote(path):
        return path
    if cache is None:
        raise ValueError(f"{path}: a local folder to download it into is needed")
    fs, inner = filesystem(path)
    local = os.path.join(cache, inner.replace("/", "_"))
    if not os.path.exists(local):
        fs.get_file(inner, local + ".part")
        os.replace(local + ".part", local)
    return local


def part_array(folder: str, number: int, name: str, cache: str | None) -> np.ndarray:
    """One of part `number`'s arrays, memory-mapped read-only."""
    from clippings.storage import join

    return np.load(local_file(join(folder, "lists", part_name(number), name + ".npy"), cache), mmap_mode="r")


def open_part_lists(folder: str, cache: str | None = None) -> PartLists:
    """The per-part lists of `folder`, every part's rows mapped in place (downloaded once into `cache` when on
    s3://)."""
    from clippings.link.store import VECTORS, read_ipc, vector_matrix, vector_part_name
    from clippings.storage import join

    blocks = []
    for number in part_numbers(folder):
        table = read_ipc(local_file(join(folder, VECTORS, vector_part_name(number)), cache))
        blocks.append((vector_matrix(table.column("vector")), part_array(folder, number, "cell_order", cache),
                       part_array(folder, number, "cell_starts", cache)))
    return PartLists.sorted_blocks(blocks)


def open_part_probes(folder: str, owners: np.ndarray, cache: str | None = None):
    """The probes of `folder`'s per-part lists (clippings.link.cells.PartProbes), mapped in place (downloaded
    once into `cache` when on s3://)."""
    from clippings.link.cells import PartProbes

    numbers = part_numbers(folder)
    return PartProbes([part_array(folder, k, "probe_table", cache) for k in numbers],
                      [part_array(folder, k, "probe_rows", cache) for k in numbers],
                      [part_array(folder, k, "probe_starts", cache) for k in numbers], owners)
