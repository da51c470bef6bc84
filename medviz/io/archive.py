"""Zip archives read in memory: never extracted to disk, bounded before and while reading.

Before any member is read, the central directory is checked against
:class:`~medviz.config.Limits`: entry count, total declared size and the per-entry
compression ratio. While reading, the bytes actually produced are counted (headers can lie)
and reading stops at the cap. Unsafe member names (``../x``, absolute paths, drive letters,
NUL) are reported and skipped; ``__MACOSX/`` and ``.DS_Store`` are ignored.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field

from medviz.io import limits as _lim
from medviz.io.results import FileProblem

MAX_DEPTH = 2  # a zip inside a zip is read; one level deeper is refused
RATIO_MIN_BYTES = 1 << 20  # the ratio check applies to members larger than 1 MiB
_CHUNK = 1 << 20


@dataclass
class Budget:
    """Bytes and entries still allowed for one load call (shared by nested archives)."""

    bytes_left: int
    entries_left: int


@dataclass
class Unpacked:
    """Members of an archive: ``(display name, bytes)`` plus problems and notes."""

    members: list[tuple[str, bytes]] = field(default_factory=list)
    problems: list[FileProblem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def new_budget() -> Budget:
    lim = _lim.limits()
    return Budget(bytes_left=lim.max_unpacked_bytes, entries_left=lim.max_zip_entries)


def unsafe_name(name: str) -> str | None:
    """Why a member name is unsafe (path traversal, absolute, NUL), or None when it is fine."""
    if "\x00" in name:
        return "NUL character in the name"
    norm = name.replace("\\", "/")
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":"):
        return "absolute path"
    if any(part == ".." for part in norm.split("/")):
        return "path traversal ('..')"
    return None


def read_zip(source: str, data: bytes, budget: Budget) -> Unpacked:
    """List and read the members of a zip held in memory.

    Args:
        source: display name of the archive (members are shown as ``source/member``).
        data: the archive bytes.
        budget: remaining byte/entry allowance, decremented here.

    Returns:
        An :class:`Unpacked` with the member bytes in archive order.

    Raises:
        ValueError: not a readable zip (corrupt central directory).
        medviz.io.limits.InputTooLarge: the archive as a whole breaks a limit (declared sizes,
            entry count, compression ratio, or bytes counted while reading).
    """
    lim = _lim.limits()
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as e:
        raise ValueError(f"not a readable zip archive: {e}") from e
    out = Unpacked()
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        if len(infos) > budget.entries_left:
            raise _lim.InputTooLarge(f"zip has {len(infos):,} entries, over the limit of {lim.max_zip_entries:,}")
        declared = sum(i.file_size for i in infos)
        if declared > budget.bytes_left:
            raise _lim.InputTooLarge(
                f"zip declares {declared:,} bytes uncompressed, over the limit of {lim.max_unpacked_bytes:,}"
            )
        for i in infos:
            if i.file_size > RATIO_MIN_BYTES and i.file_size > lim.max_zip_ratio * max(i.compress_size, 1):
                raise _lim.InputTooLarge(
                    f"zip member compresses {i.file_size / max(i.compress_size, 1):,.0f}:1, over the ratio limit of "
                    f"{lim.max_zip_ratio:g}:1 (zip bomb?)"
                )
        budget.entries_left -= len(infos)
        ignored = 0
        for info in infos:
            name = info.filename
            shown = f"{source}/{_printable(name)}"
            why = unsafe_name(name)
            if why:
                out.problems.append(
                    FileProblem(shown, f"unsafe name in zip ({why}); member skipped, nothing was extracted")
                )
                continue
            if _lim.is_ignored(name):
                ignored += 1
                continue
            if info.flag_bits & 0x1:
                out.problems.append(FileProblem(shown, "encrypted zip member; cannot be read"))
                continue
            try:
                out.members.append((shown, _read_member(zf, info, budget, lim.max_unpacked_bytes)))
            except _lim.InputTooLarge:
                raise
            except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as e:
                out.problems.append(FileProblem(shown, f"could not read zip member: {e}"))
        if ignored:
            out.notes.append(f"{ignored} system file(s) ignored in {source} (__MACOSX, .DS_Store...)")
    return out


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, budget: Budget, cap: int) -> bytes:
    """Read one member in chunks, counting real output against the declared size and the budget."""
    parts, got = [], 0
    with zf.open(info) as fh:
        while True:
            chunk = fh.read(_CHUNK)
            if not chunk:
                break
            got += len(chunk)
            if got > info.file_size + _CHUNK or got > budget.bytes_left:
                raise _lim.InputTooLarge(
                    f"zip member {_printable(info.filename)!r} produced more bytes than declared or allowed "
                    f"(limit {cap:,} bytes in total); reading stopped"
                )
            parts.append(chunk)
    budget.bytes_left -= got
    return b"".join(parts)


def _printable(name: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in name)[:300]
