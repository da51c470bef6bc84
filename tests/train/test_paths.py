"""The Training page's path checks: data sources only from the data folder and the session's uploads, start weights
and other path options only from the runs, user models and shipped weights folders; one message each."""

from __future__ import annotations

import os
from pathlib import Path

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


@pytest.fixture
def model_roots(tmp_path, monkeypatch):
    weights, user, runs = tmp_path / "weights", tmp_path / "user-models", tmp_path / "runs"
    for folder in (weights, user, runs / "job-1", runs / "uploads" / "someone"):
        folder.mkdir(parents=True)
    monkeypatch.setenv("MEDVIZ_WEIGHTS_DIR", str(weights))
    monkeypatch.setenv("MEDVIZ_USER_MODELS_DIR", str(user))
    monkeypatch.setenv("MEDVIZ_RUNS_DIR", str(runs))
    return weights, user, runs


def test_start_weights_from_the_page_only_from_runs_user_models_or_shipped_weights(model_roots, tmp_path):
    from medviz.classification.train import ClassificationTrainOptions
    from medviz.segmentation.options import SegmentationTrainOptions
    from medviz.train.cli import parse
    from medviz.train.paths import MODEL_REFUSED, check_option_paths

    weights, user, runs = model_roots
    ok = {"lgg_unet.safetensors": weights.resolve() / "lgg_unet.safetensors",  # relative: in the weights folder
          str(user / "mine.safetensors"): user.resolve() / "mine.safetensors",
          str(runs / "job-1" / "best.safetensors"): runs.resolve() / "job-1" / "best.safetensors"}
    for typed, resolved in ok.items():
        assert check_option_paths(SegmentationTrainOptions(init=Path(typed))).init == resolved
    os.symlink("/etc", weights / "etc")
    refused = set()
    for bad in ("/etc/hostname", str(tmp_path / "elsewhere.safetensors"), "../outside.safetensors",
                str(weights / "etc" / "hostname"), str(runs / "uploads" / "someone" / "their.zip")):
        with pytest.raises(DataSourceError) as e:
            check_option_paths(SegmentationTrainOptions(init=Path(bad)))
        refused.add(str(e.value))
    assert refused == {MODEL_REFUSED}
    members = ClassificationTrainOptions(members=[runs / "job-1", Path("/etc")])  # every path option, lists too
    with pytest.raises(DataSourceError, match="cannot be used from the web page"):
        check_option_paths(members)
    assert check_option_paths(SegmentationTrainOptions()).init is None
    # the command line stays unrestricted
    assert parse(["--task", "segmentation", "--init", "/etc/hostname"]).options.init == Path("/etc/hostname")
