"""Result types of the loaders and the per-file error boundary."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from medviz.types import Volume

log = logging.getLogger(__name__)
_RAW_BYTES = re.compile(r"""(?<!\w)b'(?:[^'\\]|\\.)*'?|(?<!\w)b"(?:[^"\\]|\\.)*"?""")


@dataclass(frozen=True)
class FileProblem:
    """One file that could not be used.

    Attributes:
        source: the upload/file name as given (for display; never a patient ID).
        problem: a clear human message, e.g. ``"truncated DICOM: pixel data is 1,024 bytes short"``.
    """

    source: str
    problem: str


@dataclass(frozen=True)
class SeriesChoice:
    """One loadable image or series found in the input.

    Attributes:
        key: stable id within its :class:`LoadResult` (``"1"``, ``"2"``...).
        label: non-identifying description: modality, slice count, size, SeriesNumber (DICOM) or
            format, size and file name (NIfTI, PNG/JPEG). Never a free-text description.
        volume: the image under the :class:`~medviz.types.Volume` contract.
    """

    key: str
    label: str
    volume: Volume


@dataclass(frozen=True)
class LoadResult:
    """Everything found in one batch of files.

    Attributes:
        series: loadable images; several when e.g. a zip holds several series (the user picks).
        problems: files skipped, with reasons (the others still load).
        notes: remarks such as ``"2 localizer images excluded"`` or non-image DICOM listed.
    """

    series: list[SeriesChoice]
    problems: list[FileProblem]
    notes: list[str]

    def get(self, key: str) -> SeriesChoice:
        """The choice with ``key``; KeyError listing the valid keys otherwise."""
        for s in self.series:
            if s.key == key:
                return s
        raise KeyError(f"no series {key!r} in this result; valid keys: {[s.key for s in self.series]}")


def describe(exc: BaseException, stage: str = "") -> str:
    """A one-line user message for an exception caught at the per-file boundary.

    ``ValueError`` messages are written for users by the readers and are kept as they are. Anything
    else (decoder plug-ins, pydicom or numpy internals) is said in words from the kind of failure; its
    own text goes to the debug log only, so no exception class name or library internals reach a page.

    Args:
        exc: the caught exception.
        stage: what was being done, e.g. ``"decoding JPEG 2000 pixel data"``.
    """
    prefix = f"{stage}: " if stage else ""
    if isinstance(exc, RecursionError):
        return f"{prefix}nested sequences are too deep to read; the file is malformed or hostile"
    if isinstance(exc, MemoryError):
        return f"{prefix}not enough memory to read this file"
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    text = _RAW_BYTES.sub("<bytes>", text)  # never echo file content
    if len(text) > 240:
        text = text[:239] + "…"
    if isinstance(exc, ValueError) and text and not EXCEPTION_NAME.search(text):
        return f"{prefix}{text}"
    log.debug("%s%s: %s", prefix, type(exc).__name__, text)
    return f"{prefix or 'could not read the file: '}{_in_words(exc)}"


# A Python exception or warning class name (``IndexError``, ``InvalidDicomError``, ``UserWarning``...).
EXCEPTION_NAME = re.compile(r"\b[A-Z][A-Za-z]*(?:Error|Exception|Warning)\b|\b(?:StopIteration|KeyboardInterrupt)\b")


def _in_words(exc: BaseException) -> str:
    """What a library failure means for the file, by the kind of failure."""
    if isinstance(exc, IndexError | KeyError):
        return "values in the file do not agree with each other (a table, sequence or size is shorter than declared)"
    if isinstance(exc, TypeError | AttributeError):
        return "an attribute of the file has a value of the wrong form (e.g. text where a number belongs)"
    if isinstance(exc, EOFError | OSError):
        return "the file could not be read to its end (truncated or corrupt)"
    if isinstance(exc, RuntimeError | NotImplementedError):
        return "the data could not be decoded (corrupt, or a variant no installed decoder supports)"
    if isinstance(exc, ValueError):
        return "a value in the file is invalid"
    return "the file is malformed in a way this reader cannot handle"
