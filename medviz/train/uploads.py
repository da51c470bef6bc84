"""Private, short-lived storage for data sets uploaded on the Training page.

Each browser session gets its own folder ``<runs dir>/uploads/<hash of the session's owner token>``
(mode 0700, files 0600). The folder goes away when the session does: the page keeps one
:class:`SessionUploads` in the session's state, and its finaliser removes the folder when Streamlit
drops the session (after its reconnect window) or the server exits. Folders left behind by a server
that was killed are removed by :func:`sweep_stale_uploads`, called once at server start.

The server path of an upload is never shown: commands display ``--data '<uploaded: NAME>'``
(:func:`public_command`).

Example:
    >>> store = SessionUploads(upload_folder(owner))
    >>> path = store.save("brains.zip", data)        # <folder>/brains.zip, mode 0600
    >>> store.close()                                # or: the session ends
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import time
import weakref
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from medviz.config import get_settings

if TYPE_CHECKING:  # a type only: this module stays light enough for app.py to import at start-up
    from medviz.train.command import TrainCommand

UPLOAD_TTL_S = 24 * 3600  # a folder untouched this long belongs to no live session
FOLDER_MODE, FILE_MODE = 0o700, 0o600
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def uploads_root(runs_dir: Path | None = None) -> Path:
    """The parent of every session's upload folder (``<runs dir>/uploads``)."""
    return (runs_dir or get_settings().runs_dir) / "uploads"


def upload_folder(owner: str, runs_dir: Path | None = None) -> Path:
    """The upload folder of the session with owner token ``owner`` (the token itself is not in the name)."""
    return uploads_root(runs_dir) / hashlib.sha256(owner.encode()).hexdigest()[:32]


def safe_name(name: str) -> str:
    """A file name made of safe characters only (no folders), at most 100 characters."""
    return _SAFE.sub("_", Path(name).name)[:100].lstrip(".") or "upload.zip"


def _private_dir(path: Path) -> None:
    path.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    os.chmod(path, FOLDER_MODE)  # mkdir's mode is masked by the umask and ignored for existing folders


class SessionUploads:
    """One session's upload folder; removed by :meth:`close` or when this object is garbage collected.

    Args:
        folder: the session's folder (:func:`upload_folder`).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._finalizer = weakref.finalize(self, shutil.rmtree, str(self.folder), ignore_errors=True)

    def save(self, name: str, data: bytes) -> Path:
        """Write ``data`` as ``name`` (made safe) readable by the server's user only; returns its path.

        An existing file of the same name and size is kept as it is (Streamlit reruns the page often).
        """
        _private_dir(self.folder.parent)
        _private_dir(self.folder)
        path = self.folder / safe_name(name)
        if path.is_file() and path.stat().st_size == len(data):
            return path
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), FILE_MODE)
            f.write(data)
        return path

    def close(self) -> None:
        """Remove the folder and everything in it now."""
        self._finalizer()


def sweep_stale_uploads(runs_dir: Path | None = None, ttl_s: float = UPLOAD_TTL_S,
                        now: float | None = None) -> list[Path]:
    """Remove session upload folders not modified for ``ttl_s`` seconds; returns the removed folders."""
    root, now = uploads_root(runs_dir), time.time() if now is None else now
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    for entry in root.iterdir():
        st = entry.lstat()
        if now - st.st_mtime < ttl_s:
            continue
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def is_upload(path: Path | None, folder: Path) -> bool:
    """Whether ``path`` is a file in the upload ``folder``."""
    return path is not None and Path(os.path.realpath(path)).parent == Path(os.path.realpath(folder))


def public_command(command: TrainCommand, folder: Path) -> TrainCommand:
    """``command`` with an uploaded data source shown as
    ``<uploaded: NAME>`` instead of its server path; other commands unchanged."""
    data = command.run.data
    if not is_upload(data, folder):
        return command
    return replace(command, run=replace(command.run, data=Path(f"<uploaded: {Path(data).name}>")))
