"""Class-folder / zip image sets and MedMNIST file lookup."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from medviz.classification.data import DataError, load_image_folder, load_npz_split, look_up_dataset, resolve_npz


def _png(value: int, shape=(20, 30)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full(shape, value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_zip_with_split_folders(tmp_path):
    z = tmp_path / "set.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for split, n in (("train", 4), ("val", 2), ("test", 2)):
            for cls, v in (("benign", 10), ("malignant", 200)):
                for i in range(n):
                    zf.writestr(f"top/{split}/{cls}/{i}.png", _png(v))
    splits, classes = load_image_folder(z, channels=3)
    assert classes == ["benign", "malignant"]
    assert [len(splits[s][1]) for s in ("train", "val", "test")] == [8, 4, 4]
    img, y = splits["train"][0][0], splits["train"][1][0]
    assert img.shape == (20, 30, 3) and img.dtype == np.uint8 and img[0, 0, 0] == (10 if y == 0 else 200)


def test_folder_without_splits_is_split_stratified_and_seeded(tmp_path):
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(20):
            (tmp_path / cls / f"{i}.png").write_bytes(_png(i))
    s1, _ = load_image_folder(tmp_path, seed=0)
    s2, _ = load_image_folder(tmp_path, seed=0)
    assert [np.bincount(s1[s][1]).tolist() for s in ("train", "val", "test")] == [[16, 16], [2, 2], [2, 2]]
    assert all(np.array_equal(s1[s][1], s2[s][1]) for s in s1)


def test_single_class_folder_is_refused(tmp_path):
    (tmp_path / "only").mkdir()
    (tmp_path / "only" / "x.png").write_bytes(_png(1))
    with pytest.raises(DataError, match="at least two class folders"):
        load_image_folder(tmp_path)


def test_unknown_dataset_and_missing_file(tmp_path):
    with pytest.raises(DataError, match="choose one of"):
        look_up_dataset("chestmnist")
    with pytest.raises(DataError, match="not found under"):
        resolve_npz(look_up_dataset("breastmnist"), tmp_path)


@pytest.mark.data
def test_npz_lookup_by_file_or_folder(data_dir):
    info = look_up_dataset("retinamnist")
    path = resolve_npz(info, data_dir)
    assert resolve_npz(info, path) == path == resolve_npz(info, data_dir / "medmnist")
    images, labels = load_npz_split(path, "val")
    assert images.shape == (120, 28, 28, 3) and np.bincount(labels).tolist() == [54, 12, 28, 20, 6]
    with pytest.raises(DataError, match="Unknown split"):
        load_npz_split(path, "holdout")
