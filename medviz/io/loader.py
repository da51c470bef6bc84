"""Entry points: :func:`load_files` (uploads) and :func:`load_path` (file, folder or zip on disk).

Each file is sniffed by content (never by its extension) and handed to one reader. Every
per-file failure becomes a :class:`~medviz.io.results.FileProblem`; the batch raises
:class:`~medviz.types.LoadError` only when nothing usable was found.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from medviz.io import archive as _archive
from medviz.io import dicom, nifti, raster
from medviz.io import limits as _lim
from medviz.io.quiet import quiet_pydicom
from medviz.io.results import FileProblem, LoadResult, SeriesChoice, describe
from medviz.io.series import assemble
from medviz.types import LoadError, Volume

_UNSUPPORTED = {"tiff": "TIFF", "gif": "GIF", "bmp": "BMP", "webp": "WebP"}
_MAX_LISTED = 10


@dataclass
class _Collector:
    budget: _archive.Budget
    instances: list = field(default_factory=list)
    others: list[tuple[str, str, Volume]] = field(default_factory=list)  # (sort name, label, volume)
    problems: list[FileProblem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    non_image: list[str] = field(default_factory=list)
    ignored: int = 0
    duplicates: int = 0
    digests: set[bytes] = field(default_factory=set)
    side_files: list[str] = field(default_factory=list)
    pending: list[tuple[str, bytes]] = field(default_factory=list)  # DICOM files to parse, after de-duplication
    sop_uids: set[str] = field(default_factory=set)
    sop_duplicates: int = 0

    def add(self, name: str, data: bytes, depth: int = 0) -> None:
        if _lim.is_ignored(name):
            self.ignored += 1
            return
        try:
            self._add(name, data, depth)
        except Exception as e:  # per-file boundary: nothing from one file may stop the batch
            self.problems.append(FileProblem(name, describe(e)))

    def _add(self, name: str, data: bytes, depth: int) -> None:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise ValueError(f"expected the file's bytes, got {type(data).__name__}")
        data = bytes(data)
        if not data:
            raise ValueError("empty file (0 bytes)")
        lim = _lim.limits()
        if len(data) > lim.max_upload_bytes:
            raise _lim.InputTooLarge(f"file of {len(data):,} bytes is over the limit of {lim.max_upload_bytes:,}")
        kind = _lim.sniff(data)
        if kind == "zip":
            if depth >= _archive.MAX_DEPTH:
                raise ValueError(f"zip nested more than {_archive.MAX_DEPTH} levels deep; not read")
            unpacked = _archive.read_zip(name, data, self.budget)
            self.problems += unpacked.problems
            self.notes += unpacked.notes
            if not unpacked.members and not unpacked.problems:
                self.notes.append(f"{name}: the zip holds no files")
            pending = unpacked.members[::-1]  # pop as we go: each member's bytes can be freed once read
            unpacked.members.clear()
            while pending:
                member, payload = pending.pop()
                self.add(member, payload, depth + 1)
        elif kind in ("dicom", "dicom-nopreamble"):
            digest = hashlib.sha256(data).digest()
            if digest in self.digests:
                self.duplicates += 1
                return
            self.digests.add(digest)
            uid = dicom.meta_sop_uid(data)  # cheap: a hostile archive of one image repeated is never parsed
            if uid is not None and uid in self.sop_uids:
                self.sop_duplicates += 1
                return
            if uid is not None:
                self.sop_uids.add(uid)
            self.pending.append((name, data))
        elif kind in ("gzip", "nifti", "analyze"):
            vol = nifti.read_nifti(data, name)
            z, y, x = vol.shape
            self.others.append((name, f"NIfTI · {z}×{y}×{x} · {vol.name}", vol))
        elif kind in ("png", "jpeg"):
            vol = raster.read_raster(data, name)
            colour = "RGB" if vol.is_rgb else "grayscale"
            self.others.append(
                (
                    name,
                    f"{vol.meta.get('Format', kind.upper())} · {vol.shape[1]}×{vol.shape[2]} · {colour} · {vol.name}",
                    vol,
                )
            )
        elif kind in _UNSUPPORTED:
            raise ValueError(f"{_UNSUPPORTED[kind]} images are not supported; convert to PNG, JPEG, DICOM or NIfTI")
        elif _lim.is_side_file(name):
            self.side_files.append(PurePosixPath(name.replace("\\", "/")).suffix.lower() or PurePosixPath(name).name)
        elif name.lower().endswith((".dcm", ".dicom", ".ima")):
            raise ValueError("not a DICOM file: no 'DICM' marker and no DICOM elements at the start")
        else:
            raise ValueError("not a recognised image file (DICOM, NIfTI, PNG, JPEG or zip expected)")

    def _parse_pending(self, what: str) -> None:
        """Parse the de-duplicated DICOM files, unless there are more than the limit allows (then none is
        parsed: the cost of a hostile archive stays that of reading it)."""
        pending, self.pending = self.pending, []
        cap = _lim.limits().max_dicom_files
        if len(pending) > cap:
            self.problems.append(FileProblem(what, f"{len(pending):,} distinct DICOM files, over the limit of {cap:,} "
                                                   "per upload: none of them was read (upload fewer series at a time)"))
            return
        for name, data in pending:
            try:
                self.instances.append(dicom.parse_dicom(name, data))
            except dicom.NonImageDicom as e:
                self.non_image.append(f"{name} ({e.kind})")
            except Exception as e:  # per-file boundary
                self.problems.append(FileProblem(name, describe(e)))

    def result(self, what: str) -> LoadResult:
        self._parse_pending(what)
        asm = assemble(self.instances)
        problems = self.problems + asm.problems
        notes = self.notes + asm.notes
        if self.non_image:
            notes.append("non-image DICOM listed, not loaded: " + _listing(self.non_image))
        if self.duplicates:
            notes.append(f"{self.duplicates} byte-identical duplicate DICOM file(s) ignored")
        if self.sop_duplicates:
            notes.append(f"{self.sop_duplicates:,} duplicate DICOM file(s) ignored (same SOP Instance UID as another "
                         "file, found before reading them)")
        if self.ignored:
            notes.append(f"{self.ignored} system file(s) ignored (__MACOSX, .DS_Store...)")
        if self.side_files:
            kinds = ", ".join(sorted(set(self.side_files)))
            notes.append(f"{len(self.side_files)} non-image side file(s) ignored ({kinds})")
        built = [(b.label, b.volume) for b in asm.built]
        built += [(label, vol) for _, label, vol in sorted(self.others, key=lambda t: t[0])]
        series = [SeriesChoice(str(i + 1), label, vol) for i, (label, vol) in enumerate(built)]
        if not series:
            reasons = [p.problem if p.source == what else f"{p.source}: {p.problem}" for p in problems]
            if self.non_image:
                reasons.append("only non-image DICOM objects: " + _listing(self.non_image))
            detail = "; ".join(reasons[:_MAX_LISTED]) + (
                f"; and {len(reasons) - _MAX_LISTED} more" if len(reasons) > _MAX_LISTED else ""
            )
            raise LoadError(
                what, "no usable image found" + (f" — {detail}" if detail else " (the input holds no image files)")
            )
        return LoadResult(series=series, problems=problems, notes=list(dict.fromkeys(notes)))


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    return shown + (f" and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else "")


def load_files(files: Sequence[tuple[str, bytes]]) -> LoadResult:
    """Load uploaded files: single DICOMs, DICOM series, zips, NIfTI, PNG/JPEG.

    Args:
        files: ``(name as given by the browser, e.g. "folder/IM0001", raw bytes)`` pairs, in any
            order. Formats are recognised by content.

    Returns:
        A :class:`~medviz.io.results.LoadResult`: one :class:`SeriesChoice` per series/image
        (DICOM series first, by SeriesNumber; then other files by name), problems per skipped
        file, and notes.

    Raises:
        LoadError: nothing usable was found (the message lists the problems).

    Example:
        >>> result = load_files([("scan.nii.gz", data)])  # doctest: +SKIP
        >>> volume = result.series[0].volume
    """
    files = list(files)
    if not files:
        raise LoadError("upload", "no files were given")
    col = _Collector(budget=_archive.new_budget())
    with quiet_pydicom():  # pydicom warnings can quote element values: keep them out of logs
        for item in files:
            try:
                name, data = item
            except (TypeError, ValueError):
                col.problems.append(FileProblem("(unnamed)", "expected a (name, bytes) pair"))
                continue
            col.add(str(name), data)
        return col.result(str(files[0][0]) if len(files) == 1 else "upload")


def load_path(path: str | os.PathLike) -> LoadResult:
    """Load a file, a folder (recursively) or a zip from disk, with :func:`load_files` semantics.

    File names are shown relative to the folder's parent (``folder/sub/file``). Symbolic links
    to folders are not followed.

    Raises:
        LoadError: the path does not exist, or nothing usable was found.
    """
    p = Path(path)
    if not p.exists():
        raise LoadError(str(path), "no such file or folder")
    lim = _lim.limits()
    if p.is_file():
        size = p.stat().st_size
        if size > lim.max_upload_bytes:
            raise LoadError(p.name, f"file of {size:,} bytes is over the limit of {lim.max_upload_bytes:,}")
        return load_files([(p.name, p.read_bytes())])
    files: list[tuple[str, bytes]] = []
    total = 0
    col_problems: list[FileProblem] = []
    for root, dirs, names in os.walk(p):
        dirs[:] = sorted(d for d in dirs if not _lim.is_ignored(f"{d}/x"))
        for n in sorted(names):
            f = Path(root) / n
            rel = f.relative_to(p.parent).as_posix()
            if _lim.is_ignored(rel) or not f.is_file():
                continue
            size = f.stat().st_size
            if total + size > lim.max_unpacked_bytes:
                col_problems.append(
                    FileProblem(rel, f"skipped: the folder holds more than {lim.max_unpacked_bytes:,} bytes")
                )
                continue
            total += size
            files.append((rel, f.read_bytes()))
    if not files:
        raise LoadError(p.name, "the folder holds no files")
    result = load_files(files)
    return LoadResult(result.series, col_problems + result.problems, result.notes)
