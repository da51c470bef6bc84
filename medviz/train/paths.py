"""Which server paths the Training page may train on and start from (the command line is not restricted).

A data source typed on the page is accepted only when, after resolving symlinks and ``..``, it lies
under an allowed root: the settings' data folder (``MEDVIZ_DATA_DIR``) or the session's own upload
folder. Everything else gets one message, :data:`REFUSED`, whether the path exists or not, so the
page cannot be used to learn which files exist on the server. A relative path is read relative to
the data folder.

Every other path a task option holds ("Start from weights", the run folders of an ensemble, ...) follows
the same rule with other roots (:func:`check_option_paths`): the shipped weights folder
(``MEDVIZ_WEIGHTS_DIR``, where a relative path is read), the user models folder
(``MEDVIZ_USER_MODELS_DIR``) and the runs folder (``MEDVIZ_RUNS_DIR``) except the sessions' uploads in
it; everything else gets the one message :data:`MODEL_REFUSED`.

Example:
    >>> check_data_source("lgg")                      # -> <data dir>/lgg, resolved
    >>> check_data_source("/etc/hostname")            # raises DataSourceError(REFUSED)
    >>> check_option_paths(SegmentationTrainOptions(init=Path("lgg_unet.safetensors")))  # init in weights/
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable

from medviz.config import get_settings
from medviz.options import describe
from medviz.train.uploads import uploads_root
from medviz.types import MedvizError

REFUSED = ("This data source cannot be used from the web page: choose a path inside the server's data "
           "folder (MEDVIZ_DATA_DIR) or upload a data set.")
MODEL_REFUSED = ("This path cannot be used from the web page: choose weights or a run inside the runs folder "
                 "(MEDVIZ_RUNS_DIR), the user models folder (MEDVIZ_USER_MODELS_DIR) or the shipped weights "
                 "folder (MEDVIZ_WEIGHTS_DIR).")


class DataSourceError(MedvizError):
    """A page-chosen path outside the allowed roots (one message for every such path: :data:`REFUSED` for
    data sources, :data:`MODEL_REFUSED` for the paths of task options)."""


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
    return check_under(path, allowed_roots(extra_roots), REFUSED)


def check_under(path: str | Path, roots: tuple[Path, ...], refused: str, barred: tuple[Path, ...] = ()) -> Path:
    """The resolved ``path`` (relative: to ``roots[0]``) if it lies under one of the resolved ``roots`` and
    under none of the resolved ``barred`` folders; else :class:`DataSourceError` with ``refused``, whatever
    the reason, whether the path exists or not."""
    text = str(path).strip()
    if not text or "\x00" in text:
        raise DataSourceError(refused)
    resolved = Path(os.path.realpath(roots[0] / Path(text).expanduser()))
    if not any(resolved == r or resolved.is_relative_to(r) for r in roots) or \
            any(resolved == b or resolved.is_relative_to(b) for b in barred):
        raise DataSourceError(refused)
    return resolved


def model_roots(runs_dir: Path | None = None) -> tuple[Path, ...]:
    """The resolved roots of the paths task options hold on the page: shipped weights, user models, runs
    (``runs_dir``, default the settings')."""
    s = get_settings()
    return tuple(Path(os.path.realpath(r)) for r in (s.weights_dir, s.user_models_dir, runs_dir or s.runs_dir))


def check_option_paths(options: Any, runs_dir: Path | None = None) -> Any:
    """``options`` (a task's options dataclass) with every path field (one path or a list) resolved, after
    checking each lies under :func:`model_roots` and outside the upload folders (``<runs_dir>/uploads``).

    Raises:
        DataSourceError: a path outside (message :data:`MODEL_REFUSED`, for every such path).
    """
    roots, barred = model_roots(runs_dir), (Path(os.path.realpath(uploads_root(runs_dir))),)
    changes: dict[str, Any] = {}
    for o in describe(options):
        value = getattr(options, o.name)
        if o.type is not Path or value is None:
            continue
        checked = [check_under(p, roots, MODEL_REFUSED, barred) for p in (value if o.container else [value])]
        changes[o.name] = o.container(checked) if o.container else checked[0]
    return replace(options, **changes) if changes else options
