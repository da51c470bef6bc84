"""MedMNIST ``.npz`` files and class-folder image sets as arrays, and the one classifier preprocessing.

Every classifier sees images through :func:`preprocess_image`, in training, evaluation and on the
Classify page, so the three can never drift apart.

Data sets (under ``MEDVIZ_DATA_DIR``, see ``../shared/data/MANIFEST.md``):

* ``pneumoniamnist``: ``medmnist_unofficial/pneumoniamnist_train_subsampled.npz`` -- paediatric
  chest X-ray, 0 = normal, 1 = pneumonia. Its train split is an imbalanced subset of the official
  one (3882 of 4708, 826 normal images removed); val and test are official.
* ``breastmnist``: ``medmnist/breastmnist.npz`` -- breast ultrasound, 0 = malignant, 1 = normal/benign.
* ``retinamnist``: ``medmnist/retinamnist.npz`` -- colour fundus photographs, DR grade 0..4.

A class-folder set is a folder (or ``.zip``) laid out ``<root>/<class>/*.png|jpg``, optionally
with ``train/ val/ test/`` level first; without split folders a seeded stratified 80/10/10 split
is drawn.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medviz.config import get_settings
from medviz.types import MedvizError

SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


class DataError(MedvizError):
    """A data set is missing, malformed or unusable."""


@dataclass(frozen=True)
class DatasetInfo:
    """What the project knows about one MedMNIST data set.

    Attributes:
        key: command-line name, e.g. ``"breastmnist"``.
        title: display name, e.g. ``"BreastMNIST"``.
        relpath: path of the ``.npz`` file relative to the data directory.
        classes: human-readable class names, index = label.
        modality: DICOM-style modality code the model expects (``DX``, ``US``, ``OP``...).
        modality_label: the same in words.
        channels: 1 (grey) or 3 (RGB).
        license: data licence.
        source: provenance line for model cards.
        references: published test rows ``{"method", "auc", "acc", "source"}`` (BENCHMARKS.md).
    """

    key: str
    title: str
    relpath: str
    classes: tuple[str, ...]
    modality: str
    modality_label: str
    channels: int
    license: str
    source: str
    references: tuple[dict[str, Any], ...] = field(default_factory=tuple)


_V2 = "MedMNIST v2 (Yang et al., Sci. Data 10:41, 2023), test split; ../shared/docs/BENCHMARKS.md §1.1"


def _refs(r18: tuple[float, float], best: tuple[float, float]) -> tuple[dict[str, Any], ...]:
    return (
        {"method": "ResNet-18 (28)", "auc": r18[0], "acc": r18[1], "source": _V2},
        {"method": "Google AutoML Vision (best v2 AUC)", "auc": best[0], "acc": best[1], "source": _V2},
    )


DATASETS: dict[str, DatasetInfo] = {
    "pneumoniamnist": DatasetInfo(
        "pneumoniamnist", "PneumoniaMNIST", "medmnist_unofficial/pneumoniamnist_train_subsampled.npz",
        ("normal", "pneumonia"), "DX", "chest X-ray (paediatric, frontal)", 1, "CC BY 4.0",
        "MedMNIST v2 PneumoniaMNIST (Kermany et al. 2018); unofficial copy whose train split lacks 826 "
        "normal images (val/test official)", _refs((0.944, 0.854), (0.991, 0.946)),
    ),
    "breastmnist": DatasetInfo(
        "breastmnist", "BreastMNIST", "medmnist/breastmnist.npz", ("malignant", "normal/benign"),
        "US", "breast ultrasound (B-mode, grey)", 1, "CC BY 4.0",
        "MedMNIST v2 BreastMNIST (Al-Dhabyani et al. 2020, BUSI), official file", _refs((0.901, 0.863), (0.919, 0.861)),
    ),
    "retinamnist": DatasetInfo(
        "retinamnist", "RetinaMNIST", "medmnist/retinamnist.npz",
        ("grade 0 (no DR)", "grade 1 (mild)", "grade 2 (moderate)", "grade 3 (severe)", "grade 4 (proliferative)"),
        "OP", "colour fundus photograph", 3, "CC BY 4.0",
        "MedMNIST v2 RetinaMNIST (DeepDRiD challenge), official file", _refs((0.717, 0.524), (0.750, 0.531)),
    ),
}


def look_up_dataset(key: str) -> DatasetInfo:
    """The :class:`DatasetInfo` called ``key`` (case-insensitive); DataError lists the choices."""
    info = DATASETS.get(key.lower())
    if info is None:
        raise DataError(f"Unknown data set {key!r}; choose one of {', '.join(DATASETS)}")
    return info


def resolve_npz(info: DatasetInfo, data: Path | None = None) -> Path:
    """Find the ``.npz`` of ``info``: ``data`` may be the file itself, the data directory, or any
    folder holding the file; default: the data directory of :func:`medviz.config.get_settings`."""
    root = Path(data) if data is not None else get_settings().data_dir
    if root.is_file():
        return root
    name = Path(info.relpath).name
    for cand in (root / info.relpath, root / name, *sorted(root.glob(f"**/{name}"))):
        if cand.is_file():
            return cand
    raise DataError(f"{info.title} file {name} not found under {root}; set --data or MEDVIZ_DATA_DIR")


def medmnist_cache_dir() -> Path:
    """Where :func:`download_npz` keeps files: ``MEDVIZ_MEDMNIST_DIR``, else the ``medmnist``
    package's own default ``~/.medmnist`` (never the read-only shared data directory)."""
    import os

    return Path(os.environ.get("MEDVIZ_MEDMNIST_DIR", Path.home() / ".medmnist"))


def download_npz(info: DatasetInfo, root: Path | None = None) -> Path:
    """The official ``<key>.npz`` (28 px) of ``info``, fetched by the optional ``medmnist`` package.

    Nothing is downloaded when ``root/<key>.npz`` already exists. The package is not a project
    requirement (the machine may be offline); for ``pneumoniamnist`` this is the *official* file,
    not the subsampled unofficial copy described in :data:`DATASETS`.

    Args:
        info: the data set.
        root: cache folder (created); default :func:`medmnist_cache_dir`.

    Returns:
        Path of the ``.npz`` file.

    Raises:
        DataError: the package is not installed, does not know the data set, or the download failed.
    """
    root = Path(root) if root is not None else medmnist_cache_dir()
    path = root / f"{info.key}.npz"
    if path.is_file():
        return path
    try:
        import medmnist
    except ImportError as e:
        raise DataError("the medmnist package is not installed: pip install medmnist, or pass --data with a "
                        f"local .npz ({info.title})") from e
    try:
        cls = getattr(medmnist, medmnist.INFO[info.key]["python_class"])
    except (AttributeError, KeyError) as e:
        raise DataError(f"the installed medmnist package does not provide {info.title} ({e})") from e
    try:
        root.mkdir(parents=True, exist_ok=True)
        cls(split="train", root=str(root), download=True)
    except (OSError, RuntimeError, ValueError) as e:  # URLError is an OSError; corrupt/md5 -> RuntimeError
        raise DataError(f"download failed (offline?): {info.title} via the medmnist package: {e}") from e
    if not path.is_file():
        raise DataError(f"download failed: the medmnist package wrote no {path.name} under {root}")
    return path


def load_npz_split(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Read one split of a MedMNIST-style ``.npz``.

    Returns:
        ``(images, labels)``: images ``(N, H, W)`` or ``(N, H, W, 3)`` uint8, labels ``(N,)`` int64.
    """
    if split not in SPLITS:
        raise DataError(f"Unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    try:
        with np.load(path, allow_pickle=False) as d:
            images, labels = d[f"{split}_images"], d[f"{split}_labels"]
    except KeyError as e:
        raise DataError(f"{path.name} has no {split} split ({e})") from e
    except (OSError, ValueError) as e:
        raise DataError(f"{path} is not a readable .npz file: {e}") from e
    labels = np.asarray(labels).reshape(len(labels), -1)
    if labels.shape[1] != 1:
        raise DataError(f"{path.name}: expected one label per image, got shape {labels.shape}")
    if images.ndim not in (3, 4) or len(images) != len(labels) or len(images) == 0:
        raise DataError(f"{path.name}: bad {split} arrays {images.shape} / {labels.shape}")
    return images, labels[:, 0].astype(np.int64)


def _decode(name: str, data: bytes, channels: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im.convert("RGB" if channels == 3 else "L"))
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"{name}: not a readable image ({e})") from e


def _folder_entries(root: Path) -> list[tuple[tuple[str, ...], bytes]]:
    """``(path parts, bytes)`` of every image in a folder or zip, sorted by path."""
    limits = get_settings().limits
    if root.is_file() and zipfile.is_zipfile(root):
        out, total = [], 0
        with zipfile.ZipFile(root) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir() and i.filename.lower().endswith(IMAGE_SUFFIXES)]
            if len(infos) > limits.max_zip_entries:
                raise DataError(f"{root.name} holds {len(infos)} images, more than {limits.max_zip_entries}")
            for i in sorted(infos, key=lambda i: i.filename):
                total += i.file_size
                if total > limits.max_unpacked_bytes or i.file_size > limits.max_zip_ratio * max(i.compress_size, 1):
                    raise DataError(f"{root.name} unpacks to too much data (at {i.filename})")
                out.append((tuple(p for p in i.filename.split("/") if p), zf.read(i)))
        return out
    if not root.is_dir():
        raise DataError(f"{root} is neither a folder nor a zip of class folders")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    return [(p.relative_to(root).parts, p.read_bytes()) for p in files]


def load_image_folder(root: Path, channels: int = 1, seed: int = 0) -> tuple[dict[str, tuple[list, np.ndarray]], list[str]]:
    """Read a class-folder image set (folder or zip).

    Args:
        root: ``<root>/[train|val|test/]<class>/<image>``; a single top folder inside a zip is skipped.
        channels: decode to 1 (grey) or 3 (RGB) channels.
        seed: seed of the 80/10/10 stratified split used when there are no split folders.

    Returns:
        ``({split: (images, labels)}, classes)``: images is a list of ``(H, W)`` / ``(H, W, 3)``
        uint8 arrays (sizes may differ), labels ``(N,)`` int64; classes sorted by name.
    """
    entries = _folder_entries(Path(root))
    if entries and len({e[0][0] for e in entries}) == 1 and all(len(e[0]) >= 3 for e in entries) \
            and entries[0][0][0] not in SPLITS:
        entries = [(parts[1:], b) for parts, b in entries]
    split_mode = bool(entries) and all(len(p) >= 3 and p[0] in SPLITS for p, _ in entries)
    rows = [(p[0] if split_mode else "", p[-2], "/".join(p), b) for p, b in entries if len(p) >= 2]
    classes = sorted({r[1] for r in rows})
    if len(classes) < 2:
        raise DataError(f"{Path(root).name}: need images in at least two class folders, found {classes or 'none'}")
    index = {c: i for i, c in enumerate(classes)}
    images = [_decode(name, b, channels) for _, _, name, b in rows]
    labels = np.array([index[r[1]] for r in rows], dtype=np.int64)
    if split_mode:
        which = np.array([r[0] for r in rows])
    else:
        rng = np.random.default_rng(seed)
        which = np.empty(len(rows), dtype=object)
        for k in range(len(classes)):
            idx = rng.permutation(np.flatnonzero(labels == k))
            n_val = n_test = max(1, round(0.1 * len(idx))) if len(idx) >= 3 else 0
            which[idx[:n_val]], which[idx[n_val:n_val + n_test]], which[idx[n_val + n_test:]] = "val", "test", "train"
    out = {s: ([images[i] for i in np.flatnonzero(which == s)], labels[which == s]) for s in SPLITS}
    if len(out["train"][1]) == 0 or len(out["val"][1]) == 0:
        raise DataError(f"{Path(root).name}: the train and val splits must not be empty")
    return out, classes


