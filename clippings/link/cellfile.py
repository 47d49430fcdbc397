"""The IVF lists of the cell search as files: the rows in cell order, one float32 `.npy` that is
memory-mapped, never a copy in the heap.

Why not a FAISS IndexIVFFlat: FAISS fills its lists in the heap (n·d·4 bytes: 10 GB at 10M × 256) before
the index can be written and mapped, so the heap's peak would hold a full copy of the vectors besides the
mapped pooled rows. Here the rows are gathered into the file in cell order a chunk at a time, so the heap
holds one chunk; the search reads each list as a slice of the mapped file (clippings.link.cells.PartLists),
and a Ray actor maps the same file (pages shared on one machine) or downloads it once from s3://.

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


def open_lists(folder: str) -> PartLists:
    """The lists written by write_lists, the rows memory-mapped read-only (downloaded to a local temporary
    folder first when on s3://)."""
    from clippings.storage import filesystem, is_remote, join

    if is_remote(folder):
        fs, inner = filesystem(folder)
        local = tempfile.mkdtemp(prefix="clippings-cells-")
        for name in FILES:
            fs.get_file(join(inner, name), os.path.join(local, name))
        folder = local
    rows = np.load(os.path.join(folder, FILES[0]), mmap_mode="r")
    return PartLists.cell_sorted(rows, np.load(os.path.join(folder, FILES[1])),
                                 np.load(os.path.join(folder, FILES[2])))


def remove_lists(folder: str, given: bool) -> None:
    """Remove the lists' files from `folder` (the folder itself when it was a temporary one, not given)."""
    import shutil

    from clippings.storage import filesystem, join

    if not given:
        shutil.rmtree(folder, ignore_errors=True)
        return
    fs, inner = filesystem(folder)
    for name in FILES:
        if fs.exists(join(inner, name)):
            fs.rm(join(inner, name))
