"""Which server paths the Training page may train on (the command line is not restricted).

A data source typed on the page is accepted only when, after resolving symlinks and ``..``, it lies
under an allowed root: the settings' data folder (``MEDVIZ_DATA_DIR``) or the session's own upload
folder. Everything else gets one message, :data:`REFUSED`, whether the path exists or not, so the
page cannot be used to learn which files exist on the server. A relative path is read relative to
the data folder.

Example:
    >>> check_data_source("lgg")                      # -> <data dir>/lgg, resolved
    >>> check_data_source("/etc/hostname")            # raises DataSourceError(REFUSED)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from medviz.config import get_settings
from medviz.types import MedvizError

REFUSED = ("This data source cannot be used from the web page: choose a path inside the server's data "
           "folder (MEDVIZ_DATA_DIR) or upload a data set.")


class DataSourceError(MedvizError):
    """A data source outside the allowed roots (message: :data:`REFUSED`, for every such path)."""


def allowed_roots(extra: Iterable[Path] = ()) -> tuple[Path, ...]:
    """The resolved roots a page-chosen data source may lie under: the data folder, then ``extra``."""
    return tuple(Path(os.path.realpath(r)) for r in (get_settings().data_dir, *extra))


def check_data_source(path: str | Path, extra_roots: Iterable[Path] = ()) -> Path:
    """The resolved ``path`` if it lies under an allowed root (see :func:`allowed_roots`).

    Args:
        path: the data source as typed (absolute, or relative to the data folder).
        extra_roots: more allowed folders (the session's upload folder).

    Returns:
        The path with symlinks and ``..`` resolved; it may not exist (the task then says so, which
        reveals nothing outside the roots).

    Raises:
        DataSourceError: the path is empty or resolves outside every root (same message either way).
    """
    text = str(path).strip()
    if not text or "\x00" in text:
        raise DataSourceError(REFUSED)
    roots = allowed_roots(extra_roots)
    resolved = Path(os.path.realpath(roots[0] / Path(text).expanduser()))
    if not any(resolved == r or resolved.is_relative_to(r) for r in roots):
        raise DataSourceError(REFUSED)
    return resolved
