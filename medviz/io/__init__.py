"""Loaders: DICOM (files, series, multi-frame), NIfTI, PNG/JPEG and zips, into :class:`~medviz.types.Volume`.

Public API::

    load_files(files: Sequence[tuple[str, bytes]]) -> LoadResult   # uploads
    load_path(path) -> LoadResult                                   # file, folder or zip on disk
    list_examples() -> list[Example]; load_example(key) -> Volume   # bundled, no download

Bad files never raise: they are returned as :class:`FileProblem` entries while the rest of the
batch loads; :class:`~medviz.types.LoadError` is raised only when nothing usable was found.
Heavy libraries (pydicom, nibabel, Pillow) are imported on first use.

Modules: ``loader`` (dispatch), ``dicom`` (one file), ``series`` (grouping, sorting, geometry),
``nifti``, ``raster`` (PNG/JPEG), ``archive`` (zip in memory), ``geometry`` (LPS+ reorientation),
``limits`` (size caps, sniffing), ``examples``, ``results`` (result types).
"""

from __future__ import annotations

from medviz.io.examples import Example, list_examples, load_example
from medviz.io.loader import load_files, load_path
from medviz.io.results import FileProblem, LoadResult, SeriesChoice

__all__ = [
    "Example",
    "FileProblem",
    "LoadResult",
    "SeriesChoice",
    "list_examples",
    "load_example",
    "load_files",
    "load_path",
]
