"""The Training page's data source check: only the data folder and the session's uploads, one message."""

from __future__ import annotations

import os

import pytest

from medviz.train.paths import REFUSED, DataSourceError, check_data_source


@pytest.fixture
def roots(tmp_path, monkeypatch):
    data = tmp_path / "data"
    (data / "lgg").mkdir(parents=True)
    (data / "lgg" / "pairs.csv").write_text("image,mask\n")
    uploads = tmp_path / "uploads" / "me"
    uploads.mkdir(parents=True)
    (uploads / "mine.zip").write_bytes(b"PK")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.npz").write_bytes(b"x")
    monkeypatch.setenv("MEDVIZ_DATA_DIR", str(data))
    return data, uploads, outside


def _refused(path, extra=()):
    with pytest.raises(DataSourceError) as e:
        check_data_source(path, extra)
    return str(e.value)


def test_paths_under_the_data_folder_or_the_uploads_are_accepted_resolved(roots):
    data, uploads, _ = roots
    assert check_data_source(str(data / "lgg")) == data.resolve() / "lgg"
    assert check_data_source("lgg/pairs.csv") == data.resolve() / "lgg" / "pairs.csv"  # relative: in the data folder
    assert check_data_source(data / "lgg" / ".." / "lgg") == data.resolve() / "lgg"
    assert check_data_source(data / "not-there") == data.resolve() / "not-there"  # the task says it is missing
    assert check_data_source(uploads / "mine.zip", [uploads]) == uploads.resolve() / "mine.zip"


def test_everything_else_gets_one_message_whether_it_exists_or_not(roots):
    data, uploads, outside = roots
    link = data / "escape"
    os.symlink(outside, link)
    messages = {
        "existing file outside": _refused(outside / "secret.npz"),
        "system file": _refused("/etc/hostname"),
        "missing file outside": _refused(outside / "nothing.npz"),
        "dot-dot escape": _refused(f"{data}/lgg/../../outside/secret.npz"),
        "relative escape": _refused("../outside/secret.npz"),
        "symlink escape": _refused(link / "secret.npz"),
        "other session's uploads": _refused(uploads / "mine.zip"),
        "empty": _refused("  "),
    }
    assert set(messages.values()) == {REFUSED}, messages
    assert "secret" not in REFUSED and "exist" not in REFUSED
