"""The image-path policy and image reading: where a row's `image_path` may be read from, the encoded image
of a row (inline bytes, or the file its path names) (docs/architecture.md#where-images-are-read-from), and
its decoding (without torch: the pixel baseline and the readers need no model).
"""

from __future__ import annotations

import io
import os
import posixpath
from dataclasses import dataclass
from typing import TYPE_CHECKING

from clippings.storage import filesystem, join

if TYPE_CHECKING:
    from PIL import Image


@dataclass(frozen=True)
class ImagePolicy:
    """Which image locations outside the archive folder a run may read
    (docs/architecture.md#where-images-are-read-from).

    An archive handed over by someone else must not pull arbitrary files of the job's user (`/etc/passwd`,
    a key file behind a symlink) into a job, so by default an `image_path` is read only inside the archive
    folder. allow_external: read any absolute path or URI, and relative paths resolving anywhere (the user
    trusts the archive). allowed_prefixes: absolute folders or URI prefixes (`/data/images`,
    `file:///data/images`, `s3://bucket/images`) whose contents may be read; local ones are compared after
    following symlinks, URIs after normalising `..`, and a prefix matches whole path components only.
    """

    allow_external: bool = False
    allowed_prefixes: tuple[str, ...] = ()

    def allows(self, location: str) -> bool:
        """True when the canonical `location` (from `canonical_location`) may be read."""
        return self.allow_external or any(
            _inside(location, canonical_location(prefix)) for prefix in self.allowed_prefixes
        )

    def argv(self) -> list[str]:
        """The command-line flags giving this policy (for stages run through the CLI, e.g. replicate)."""
        flags = ["--allow-external-images"] if self.allow_external else []
        for prefix in self.allowed_prefixes:
            flags += ["--allowed-image-prefix", prefix]
        return flags


ARCHIVE_ONLY = ImagePolicy()
"""The default policy: images are read only inside the archive folder."""


def canonical_location(path: str) -> str:
    """The location a path or URI names, in one spelling: a local path (also `file://`) made absolute with
    symlinks followed; another URI as `scheme://` plus its path with `.`, `..` and repeated `/` removed."""
    if path.startswith("file://"):
        path = path[len("file://"):]
    if "://" not in path:
        return os.path.realpath(path)
    scheme, rest = path.split("://", 1)
    rest = posixpath.normpath(rest).lstrip("/")
    return f"{scheme}://{'' if rest == '.' else rest}"


def _inside(location: str, folder: str) -> bool:
    """True when canonical `location` is `folder` or below it (whole components: /a/bc is not in /a/b)."""
    return location == folder or location.startswith(folder.rstrip("/") + "/")


def resolve_image_path(dataset: str, image_path: str, policy: ImagePolicy = ARCHIVE_ONLY) -> str:
    """The canonical location of a row's `image_path`, read only where `policy` allows it.

    A relative path is taken from the dataset folder and must stay inside it once `..` is normalised and,
    for local folders, symlinks are followed; an absolute path or a URI (`file://`, `s3://`, anything
    fsspec reads) lies outside the archive by definition. Outside locations are read only when `policy`
    allows them. Returns the location checked, so the reader opens exactly what was allowed.
    Raises ValueError with a quarantine reason naming the rule otherwise. Cost: one `realpath` (a few
    `lstat` calls) for local paths, string work for URIs; no file is opened.
    """
    if "://" in image_path or os.path.isabs(image_path):
        location = canonical_location(image_path)
        if policy.allows(location):
            return location
        raise ValueError(
            f"image_path {image_path!r} is an absolute path or URI, outside the archive folder; such paths are "
            "read only when allowed: give --allowed-image-prefix covering it or --allow-external-images"
        )
    location = canonical_location(join(dataset, image_path))
    if _inside(location, canonical_location(dataset)) or policy.allows(location):
        return location
    raise ValueError(
        f"image_path {image_path!r} resolves to {location}, outside the archive folder; a relative image_path "
        "must stay inside it: move the file in, or allow it with --allowed-image-prefix or "
        "--allow-external-images"
    )


def read_image_bytes(image: bytes | None, path: str | None) -> bytes:
    """The encoded image of a row: inline bytes, else the file at `path` (already resolved, local or URI).

    Raises ValueError with a short reason (a quarantine reason) when neither is there or the file cannot be read.
    """
    if image is not None:
        return image
    if path is None:
        raise ValueError("no image and no image_path")
    fs, inner = filesystem(path)
    try:
        with fs.open(inner, "rb") as f:
            return f.read()
    except FileNotFoundError as e:
        raise ValueError(f"image file not found: {path}") from e
    except OSError as e:
        raise ValueError(f"image file not readable: {path} ({type(e).__name__})") from e


def read_row_image(dataset: str, image: bytes | None, image_path: str | None,
                   policy: ImagePolicy = ARCHIVE_ONLY) -> bytes:
    """A row's encoded image when the caller holds the raw row: inline bytes win; else `image_path` is
    resolved against `dataset` under `policy` (`resolve_image_path`) and read (`read_image_bytes`).

    Raises ValueError with a quarantine reason (refused path, missing or unreadable file).
    """
    if image is not None or image_path is None:
        return read_image_bytes(image, None)
    return read_image_bytes(None, resolve_image_path(dataset, image_path, policy))


def decode_image(data: bytes) -> Image.Image:
    """Decode encoded image bytes to RGB; raises ValueError with a short reason when undecodable."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.convert("RGB")
    except Exception as e:  # PIL raises many types for corrupt data
        raise ValueError(f"undecodable image ({type(e).__name__}: {str(e)[:80]})") from e
