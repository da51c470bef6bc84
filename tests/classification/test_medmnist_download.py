"""``--download``: MedMNIST through the optional ``medmnist`` package, simulated (never the network)."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest

from medviz.classification.data import DataError, download_npz, look_up_dataset


def _fake_medmnist(behaviour):
    """A stand-in ``medmnist`` module whose BreastMNIST(split, root, download) calls ``behaviour(root)``."""
    mod = types.ModuleType("medmnist")
    mod.INFO = {"breastmnist": {"python_class": "BreastMNIST"}}

    class BreastMNIST:
        def __init__(self, split: str, root: str, download: bool = False) -> None:
            assert download and split in ("train", "val", "test")
            behaviour(Path(root))

    mod.BreastMNIST = BreastMNIST
    return mod


def _write_npz(root: Path) -> None:
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 24), ("val", 8), ("test", 8)):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 2).reshape(n, 1)
    np.savez(root / "breastmnist.npz", **arrays)


def _offline(root: Path) -> None:
    raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")


def test_package_absent_gives_install_hint(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "medmnist", None)  # import medmnist -> ImportError
    with pytest.raises(DataError, match=r"the medmnist package is not installed: pip install medmnist, "
                                        r"or pass --data with a local \.npz"):
        download_npz(look_up_dataset("breastmnist"), tmp_path)


def test_download_error_is_reported_as_offline(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "medmnist", _fake_medmnist(_offline))
    with pytest.raises(DataError, match=r"download failed \(offline\?\): .*name resolution"):
        download_npz(look_up_dataset("breastmnist"), tmp_path / "cache")


def test_cached_file_needs_no_package(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "medmnist", None)
    _write_npz(tmp_path)
    assert download_npz(look_up_dataset("breastmnist"), tmp_path) == tmp_path / "breastmnist.npz"


def _task(tmp_path, monkeypatch, download=False):
    from medviz.classification.train import ClassificationTask, ClassificationTrainOptions

    monkeypatch.setenv("MEDVIZ_MEDMNIST_DIR", str(tmp_path / "cache"))
    (tmp_path / "empty").mkdir(exist_ok=True)
    return ClassificationTask(ClassificationTrainOptions(dataset="breastmnist", download=download),
                              data=tmp_path / "empty")


def test_task_without_download_flag_suggests_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "medmnist", _fake_medmnist(_write_npz))
    with pytest.raises(DataError, match="not found under .*pass --download"):
        _task(tmp_path, monkeypatch).build_data()
    assert not (tmp_path / "cache").exists()  # nothing fetched without the flag


def test_task_downloads_then_reads_the_npz(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "medmnist", _fake_medmnist(_write_npz))
    data = _task(tmp_path, monkeypatch, download=True).build_data()
    assert data.summary["counts"]["train"] == [12, 12] and len(data.val) == 8
    assert (tmp_path / "cache" / "breastmnist.npz").is_file()


def test_task_download_offline_message(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "medmnist", _fake_medmnist(_offline))
    with pytest.raises(DataError, match=r"download failed \(offline\?\)"):
        _task(tmp_path, monkeypatch, download=True).build_data()
