"""Bad-input guards shared by the readers: size caps, capped inflation, name filters, sniffing.

Every check here runs *before* a large allocation, so a hostile header or archive is refused
with a clear message instead of exhausting memory. The limits come from
:class:`medviz.config.Limits` (read through :func:`limits`).
"""

from __future__ import annotations

import math
import zlib
from pathlib import PurePosixPath

from medviz.config import Limits, get_settings

# Files a browser or an OS adds to folders and archives; never images.
IGNORED_BASENAMES = frozenset({".ds_store", "thumbs.db", "desktop.ini", ".directory"})
IGNORED_DIRS = frozenset({"__macosx", ".git", ".svn"})
# Side files that commonly sit beside images; listed in notes, not reported as problems.
SIDE_FILE_SUFFIXES = frozenset(
    {".txt", ".md", ".json", ".csv", ".tsv", ".xml", ".html", ".htm", ".pdf", ".nrrd", ".py", ".ini", ".log"}
)


class InputTooLarge(ValueError):
    """A declared or measured size is over a limit in :class:`medviz.config.Limits`."""


def limits() -> Limits:
    """The active :class:`~medviz.config.Limits` (read from the settings at each call)."""
    return get_settings().limits


def is_ignored(name: str) -> bool:
    """True for OS clutter: ``__MACOSX/`` members, ``.DS_Store``, AppleDouble ``._x`` files.

    Args:
        name: the name as given (``folder/file``), ``/`` or ``\\`` separated.
    """
    parts = [p for p in name.replace("\\", "/").split("/") if p]
    if not parts:
        return True
    base = parts[-1].lower()
    if base in IGNORED_BASENAMES or base.startswith("._"):
        return True
    return any(p.lower() in IGNORED_DIRS for p in parts[:-1])


def is_side_file(name: str) -> bool:
    """True for names whose suffix marks a known non-image side file (``.txt``, ``.json``...)."""
    suffix = PurePosixPath(name.replace("\\", "/")).suffix.lower()
    return suffix in SIDE_FILE_SUFFIXES or PurePosixPath(name).name.upper().startswith(("LICENSE", "README"))


def check_voxels(shape: tuple[int, ...], what: str, lim: Limits | None = None) -> None:
    """Refuse a declared array shape before anything is allocated.

    Args:
        shape: declared sizes, e.g. ``(frames, rows, columns)``.
        what: a short description used in the message, e.g. ``"DICOM pixel data"``.
        lim: limits to use (default: :func:`limits`).

    Raises:
        InputTooLarge: a size is not positive, a dimension is over ``max_dim`` or the product is
            over ``max_voxels``.
    """
    lim = lim or limits()
    dims = "×".join(str(int(s)) for s in shape)
    if any(int(s) <= 0 for s in shape):
        raise InputTooLarge(f"{what} has an empty or negative size {dims}")
    if any(int(s) > lim.max_dim for s in shape):
        raise InputTooLarge(f"{what} size {dims} has a dimension over the limit of {lim.max_dim:,}")
    n = math.prod(int(s) for s in shape)
    if n > lim.max_voxels:
        raise InputTooLarge(f"{what} size {dims} = {n:,} voxels is over the limit of {lim.max_voxels:,}")


def inflate_capped(data: bytes, cap: int, *, wbits: int, what: str) -> bytes:
    """Decompress zlib/gzip/raw-deflate ``data``, refusing output over ``cap`` bytes.

    The output is produced incrementally (``max_length``), so a bomb never grows past ``cap``.

    Args:
        data: the compressed bytes.
        cap: largest accepted output in bytes.
        wbits: zlib ``wbits`` (``31`` gzip, ``-15`` raw deflate, ``15`` zlib).
        what: description for messages, e.g. ``"gzip stream"``.

    Returns:
        The decompressed bytes (at most ``cap``).

    Raises:
        InputTooLarge: the output would exceed ``cap``.
        ValueError: the stream is corrupt or truncated.
    """
    d = zlib.decompressobj(wbits)
    try:
        out = d.decompress(data, cap + 1)
    except zlib.error as e:
        raise ValueError(f"corrupt {what}: {e}") from e
    if len(out) > cap or d.unconsumed_tail:
        raise InputTooLarge(f"{what} inflates to more than the limit of {cap:,} bytes")
    if not d.eof:
        raise ValueError(f"truncated {what}: the compressed data ends early")
    return out


# ---- content sniffing ---------------------------------------------------------------------

_PNG = b"\x89PNG\r\n\x1a\n"


def sniff(data: bytes) -> str:
    """Guess a format from content, never from the file name.

    Returns:
        One of ``"zip"``, ``"gzip"``, ``"nifti"``, ``"dicom"``, ``"dicom-nopreamble"``,
        ``"png"``, ``"jpeg"``, ``"tiff"``, ``"gif"``, ``"bmp"``, ``"webp"``, ``"analyze"``
        or ``"unknown"``.
    """
    head = data[:1024]
    if len(data) >= 132 and data[128:132] == b"DICM":
        return "dicom"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(_PNG):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head.startswith(b"BM"):
        return "bmp"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    nifti = sniff_nifti_header(head)
    if nifti:
        return nifti
    if looks_like_raw_dicom(head):
        return "dicom-nopreamble"
    return "unknown"


def sniff_nifti_header(head: bytes) -> str | None:
    """``"nifti"`` for a NIfTI-1/2 single-file header, ``"analyze"`` for a pair header, else None."""
    if len(head) >= 348:
        for order in ("little", "big"):
            size = int.from_bytes(head[:4], order)
            if size == 348 and head[344:348] in (b"n+1\x00",):
                return "nifti"
            if size == 348 and head[344:348] == b"ni1\x00":
                return "analyze"
            if size == 540 and head[4:8] == b"n+2\x00":
                return "nifti"
    return None


def looks_like_raw_dicom(head: bytes) -> bool:
    """A DICOM data set without preamble: starts with a group 0002/0008 element, little or big endian."""
    if len(head) < 8:
        return False
    group_le = int.from_bytes(head[:2], "little")
    group_be = int.from_bytes(head[:2], "big")
    if group_le not in (0x0002, 0x0008) and group_be not in (0x0002, 0x0008):
        return False
    vr = head[4:6]
    explicit = vr.isalpha() and vr.isupper()
    if explicit:
        return True
    # Implicit VR: a 4-byte length that fits in the header.
    length = int.from_bytes(head[4:8], "little")
    return 0 < length < 1024
