"""What a links folder keeps so that `link --add` can search new rows against old ones, and writing a
links folder all at once.

`vectors/part-*.arrow` holds, per clipping, the pooled float32 unit vector the linking searched
(`clipping_id`, `vector`) and, for `ivf` links, its IVF cell (`cell`); `vectors/centroids.arrow` holds the
IVF centroids. Each link or add writes its rows as parts of its own (ivf: sorted by cell, so an add reads
every IVF list in place, one run per part; flat/pruned: in linking order) and carries the older parts over
(hard links locally, server-side copies on S3), so an add writes only the new rows.
The files are Arrow IPC, uncompressed: an add reads every old vector, and IPC is read by mapping the file
(float vectors barely compress, and Parquet decodes a fixed-size list value by value, several times
slower). Disk: 4·d bytes per clipping plus its id, ~2.06 GB per million at d = 512, ~1.04 GB at d = 256
(+4 bytes for an ivf cell). The pooled vectors, not the two towers: half the disk and nothing to re-pool;
a different `w` needs a new linking anyway.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from clippings.errors import BadInput
from clippings.link.graph import IvfCells
from clippings.storage import exists, filesystem, is_remote, join, read_bytes, write_bytes_atomic

VECTORS = "vectors"
CENTROIDS = "centroids.arrow"
LINKS_JSON = "links.json"
CLUSTERS = "clusters.parquet"
MST = "mst.parquet"
LINKS_FILES = (CLUSTERS, VECTORS, MST, "changes.parquet")  # what links.json describes
DERIVED_FILES = ("_quarantine", "metrics.json")  # also of one run: its quarantine, evaluate's score
ROWS_PER_PART = 100_000


@dataclass
class VectorRows:
    """Pooled vectors to persist: `ids` (m,), `vectors` (m, d) float32 and, for ivf links, `cells` (the
    centroids and the cell of each of these m rows), written after the rows of links folder `carry`'s
    vectors (None: these are all the rows)."""

    ids: np.ndarray
    vectors: np.ndarray
    cells: IvfCells | None = None
    carry: str | None = None


@dataclass
class StoredVectors:
    """The vectors folder of a links folder in memory: ids in stored order, the float32 vectors as one
    (rows, d) block per part (mapped when local; read in place by an ivf add, joined by a flat one), the IVF
    cells (None unless ivf)."""

    ids: np.ndarray
    blocks: list[np.ndarray]
    cells: IvfCells | None

    @property
    def dim(self) -> int:
        return int(self.blocks[0].shape[1])


def vector_part_name(i: int) -> str:
    """The file name of part i of a links folder's vectors."""
    return f"part-{i:05d}.arrow"


def write_ipc(table: pa.Table, path: str) -> None:
    """One Arrow IPC file, streamed out: inside a staged local folder (renamed whole at the end) or as one
    S3 upload, which S3 shows all at once."""
    fs, inner = filesystem(path)
    if not is_remote(path):
        os.makedirs(os.path.dirname(inner), exist_ok=True)
    with fs.open(inner, "wb") as f, pa.ipc.new_file(f, table.schema) as writer:
        writer.write_table(table)


def read_ipc(path: str) -> pa.Table:
    """An Arrow IPC file: memory-mapped locally (no copy, no decoding), read whole from S3."""
    try:
        if is_remote(path):
            return pa.ipc.open_file(pa.py_buffer(read_bytes(path))).read_all()
        return pa.ipc.open_file(pa.memory_map(path)).read_all()  # the buffers keep the mapping alive
    except (pa.ArrowInvalid, OSError) as e:
        raise BadInput(
            f"links vectors {path}: not a readable Arrow IPC file ({str(e).splitlines()[0]}); re-run "
            "'clippings link' to rewrite the links folder"
        ) from e


def _carry_file(src: str, dst: str) -> None:
    """Copy one finished file into a new folder: a hard link locally (free), a server-side copy within one
    object store, else bytes through memory (one part at a time)."""
    if not is_remote(src) and not is_remote(dst):
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        try:
            os.link(src, dst)
        except OSError:  # another device, or a filesystem without hard links
            shutil.copyfile(src, dst)
        return
    src_fs, src_inner = filesystem(src)
    dst_fs, dst_inner = filesystem(dst)
    if src_fs is dst_fs:
        src_fs.copy(src_inner, dst_inner)
    else:
        write_bytes_atomic(dst, read_bytes(src))


def fixed_list(a: np.ndarray) -> pa.FixedSizeListArray:
    flat = pa.array(np.ascontiguousarray(a, dtype=np.float32).reshape(-1), pa.float32())
    return pa.FixedSizeListArray.from_arrays(flat, a.shape[1])


def vector_matrix(column: pa.ChunkedArray) -> np.ndarray:
    """(rows, d) float32 from a fixed-size list column: a view of a single chunk, else one copy."""
    dim = column.type.list_size
    # one chunk: its values in place (a mapped file stays mapped; combine_chunks would copy it)
    values = column.chunks[0].flatten() if column.num_chunks == 1 else column.combine_chunks().flatten()
    return values.to_numpy(zero_copy_only=False).reshape(-1, dim)


def write_vectors(folder: str, rows: VectorRows, rows_per_part: int = ROWS_PER_PART) -> None:
    """Write `folder/vectors/`: the parts of `rows.carry` first (carried, not rewritten), then `rows` in parts
    of `rows_per_part`, then the IVF centroids. Cost: O(m·d) written for the m rows given; each carried part
    costs a hard link or a copy."""
    out = join(folder, VECTORS)
    carried = read_vector_parts(rows.carry) if rows.carry else []
    for i, part in enumerate(carried):
        _carry_file(part, join(out, vector_part_name(i)))
    # ivf rows are written in cell order, so an add reads each IVF list as one run per part, in place
    order = None if rows.cells is None else np.argsort(rows.cells.assign, kind="stable")
    ids = np.asarray(rows.ids, dtype=object)
    for start in range(0, len(rows.ids), rows_per_part):
        at = slice(start, start + rows_per_part) if order is None else order[start : start + rows_per_part]
        columns = {
            "clipping_id": pa.array(ids[at], pa.string()),
            "vector": fixed_list(rows.vectors[at]),
        }
        if rows.cells is not None:
            columns["cell"] = pa.array(rows.cells.assign[at].astype(np.int32))
        write_ipc(pa.table(columns), join(out, vector_part_name(len(carried) + start // rows_per_part)))
    if rows.cells is not None:
        write_ipc(pa.table({"centroid": fixed_list(rows.cells.centroids)}), join(out, CENTROIDS))
    elif rows.carry and exists(join(rows.carry, VECTORS, CENTROIDS)):
        _carry_file(join(rows.carry, VECTORS, CENTROIDS), join(out, CENTROIDS))


def read_vector_parts(links: str) -> list[str]:
    """The part files of `links/vectors/`; a links folder without them cannot take a batch (one line)."""
    folder = join(links, VECTORS)
    fs, inner = filesystem(folder)
    names = sorted(
        os.path.basename(p) for p in (fs.ls(inner, detail=False) if fs.isdir(inner) else [])
    )
    parts = [join(folder, name) for name in names if name.startswith("part-") and name.endswith(".arrow")]
    if not parts:
        raise BadInput(
            f"links {links}: no {VECTORS}/ folder (the pooled vectors 'link --add' searches new rows "
            "against); re-run 'clippings link --embeddings ...' to make a links folder that can be extended"
        )
    return parts


def read_vectors(links: str, expected_rows: int) -> StoredVectors:
    """Read `links/vectors/` (ids and float32 vectors in stored order, IVF cells) and check it holds
    `expected_rows` rows. Memory: local parts are mapped, not copied (read-only views); S3 parts n·d·4 bytes."""
    parts = read_vector_parts(links)
    table = pa.concat_tables([read_ipc(p) for p in parts])
    if table.num_rows != expected_rows:
        raise BadInput(
            f"links {links}: {VECTORS}/ holds {table.num_rows} rows but links.json counts {expected_rows} "
            "clippings; the folder is inconsistent (an interrupted write?): re-run 'clippings link'"
        )
    cells = None
    if "cell" in table.column_names:
        centroids = vector_matrix(read_ipc(join(links, VECTORS, CENTROIDS)).column("centroid"))
        cells = IvfCells(np.array(centroids), table.column("cell").to_numpy().astype(np.int64))
    ids = table.column("clipping_id").to_numpy(zero_copy_only=False)
    blocks = [vector_matrix(pa.chunked_array([chunk])) for chunk in table.column("vector").chunks]
    return StoredVectors(ids, blocks, cells)


def same_location(a: str, b: str) -> bool:
    """True when two folder paths or URIs name the same folder."""
    if is_remote(a) or is_remote(b):
        return a.rstrip("/") == b.rstrip("/")
    return os.path.realpath(a) == os.path.realpath(b)


def check_replaceable(out: str) -> None:
    """Refuse a local `out` that exists and is neither empty (logs aside) nor a links folder: writing a links
    folder replaces `out` whole, and must never take a user's other files with it."""
    if is_remote(out) or not os.path.isdir(out):
        return
    others = [e for e in os.listdir(out) if not e.endswith(".log")]
    if others and LINKS_JSON not in others:
        raise BadInput(
            f"links {out}: the folder exists and is not a links folder (it holds {sorted(others)[0]!r}); "
            "give a new or empty folder as --out"
        )


def require_complete(links: str) -> None:
    """Refuse (one line) a links folder that holds links files but no links.json.

    Every writer puts links.json last (and on S3 removes an older one first, see `staged_folder`), so such a
    folder is what a link that did not finish leaves: its files may be a mix of two runs or partly missing,
    and nothing read from it can be trusted. A folder with none of the files is left to the caller's own
    'not found' message. Readers call this before reading anything else.
    """
    if exists(join(links, LINKS_JSON)):
        return
    present = [name for name in LINKS_FILES if exists(join(links, name))]
    if present:
        raise BadInput(
            f"links {links}: incomplete, it has {present[0]} but no {LINKS_JSON} (written last): a link into "
            "this folder did not finish; re-run that 'clippings link' to write the folder whole"
        )


@contextmanager
def staged_folder(out: str) -> Iterator[str]:
    """Yield a folder to write a complete links folder into, links.json last; on success it replaces `out`.

    Locally the folder is a hidden sibling `.NAME.tmp-*`, renamed onto `out` at the end (the old `out`, if
    any, is renamed aside first and then removed): a crash leaves the old folder whole, under its name or,
    between the two renames, as `.NAME.old-*`. An existing `out` that is neither empty nor a links folder is
    refused (BadInput), never replaced. Log files of this run already in `out` move into the new
    folder (an open log handler follows the file). On S3 there is no rename: files go straight into `out`,
    each one PUT. An older links.json there is removed first, then the older run's other files (logs
    aside), as a local folder is replaced whole, except clusters.parquet, which every links writer
    overwrites (one PUT): so from the first removal until the caller writes the new links.json the folder
    holds a clusters.parquet and no links.json, which readers refuse as incomplete (`require_complete`),
    and a crash in between never leaves old metadata describing missing or newer files. Writing onto the
    folder being read is refused before (see `same_location`).
    """
    if is_remote(out):
        fs, inner = filesystem(out)
        for name in (LINKS_JSON, *(f for f in LINKS_FILES if f != CLUSTERS), *DERIVED_FILES):
            if fs.exists(f"{inner}/{name}"):
                fs.rm(f"{inner}/{name}", recursive=True)
        yield out
        return
    out = os.path.abspath(out)
    parent, name = os.path.split(out)
    check_replaceable(out)
    os.makedirs(parent, exist_ok=True)
    tag = uuid.uuid4().hex
    tmp = os.path.join(parent, f".{name}.tmp-{tag}")
    os.makedirs(tmp)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if not os.path.isdir(out):
        os.rename(tmp, out)
        return
    for entry in os.listdir(out):
        if entry.endswith(".log"):
            os.replace(os.path.join(out, entry), os.path.join(tmp, entry))
    old = os.path.join(parent, f".{name}.old-{tag}")
    os.rename(out, old)
    os.rename(tmp, out)
    shutil.rmtree(old)
