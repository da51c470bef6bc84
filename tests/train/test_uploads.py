"""Training uploads: private files in a per-session folder, gone with the session and by the start-up sweep."""

from __future__ import annotations

import gc
import os
import stat
import time
from pathlib import Path

from medviz.train.command import RunOptions, TrainCommand, to_argv
from medviz.train.uploads import SessionUploads, public_command, sweep_stale_uploads, upload_folder

OWNER = "o" * 24


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_uploads_are_private_and_removed_when_the_session_object_goes(tmp_path):
    old = os.umask(0o022)
    try:
        store = SessionUploads(upload_folder(OWNER, tmp_path))
        path = store.save("../My data set.zip", b"PK\x03\x04")
    finally:
        os.umask(old)
    assert path.parent == store.folder and path.name == "My_data_set.zip"
    assert path.read_bytes() == b"PK\x03\x04"
    assert _mode(path) == 0o600 and _mode(store.folder) == 0o700
    assert OWNER not in str(path)
    folder = store.folder
    del store
    gc.collect()
    assert not folder.exists()


def test_close_removes_the_folder(tmp_path):
    store = SessionUploads(upload_folder(OWNER, tmp_path))
    store.save("a.npz", b"x")
    store.close()
    assert not store.folder.exists()


def test_start_up_sweep_removes_only_stale_folders(tmp_path):
    stale = SessionUploads(upload_folder("s" * 24, tmp_path))
    fresh = SessionUploads(upload_folder("f" * 24, tmp_path))
    stale.save("a.zip", b"x")
    fresh.save("b.zip", b"y")
    day_ago = time.time() - 2 * 24 * 3600
    os.utime(stale.folder, (day_ago, day_ago))
    removed = sweep_stale_uploads(tmp_path, ttl_s=24 * 3600)
    assert removed == [stale.folder]
    assert not stale.folder.exists() and (fresh.folder / "b.zip").exists()
    assert sweep_stale_uploads(tmp_path / "nothing") == []


def test_commands_show_the_upload_by_name_not_by_server_path(tmp_path):
    folder = upload_folder(OWNER, tmp_path)
    upload = TrainCommand("toy", run=RunOptions(data=folder / "brains.zip"))
    shown = to_argv(public_command(upload, folder))
    assert "<uploaded: brains.zip>" in shown and not any(str(tmp_path) in a for a in shown)
    other = TrainCommand("toy", run=RunOptions(data=tmp_path / "data" / "x.npz"))
    assert public_command(other, folder) is other
