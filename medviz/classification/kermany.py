"""The Kermany paediatric chest X-ray layout: ``labels.csv`` + images, split by patient.

Layout (``../shared/data/MANIFEST.md`` section 12; any folder laid out the same way works with
``--data DIR``)::

    <root>/labels.csv                  path, split, label, patient_id, person_num_in_other_official_split, ...
    <root>/{train,val,test}/{NORMAL,PNEUMONIA}/*.jpg

``label`` is 0 = normal, 1 = pneumonia. Model selection uses a validation set drawn from the
official ``train/`` **by patient** (:func:`patient_split`): every image of one ``patient_id`` lands
on one side. The official ``val/`` (16 images) is only an extra check (split ``official_val``).
Images go through the one classifier preprocessing
(:func:`medviz.classification.preprocess.preprocess_image`), as on the Classify page.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medviz.classification.data import DataError
from medviz.classification.preprocess import preprocess_batch
from medviz.config import get_settings

#: ``--dataset`` key of this layout and its folder under the data directory.
KEY = "kermany_cxr"
FOLDER = "cxr_pneumonia_kermany"
CLASSES = ("normal", "pneumonia")
#: Share of the training *patients* (per class) held out for model selection.
VAL_FRACTION = 0.15
#: Splits :func:`load_split` knows: the patient-level halves of ``train/``, the official val and test.
SPLITS = ("train", "val", "official_val", "test")
#: Side of the stored images' shorter edge (the layout's images; the model input is smaller).
NATIVE_SIZE = 256
#: Median width / height of the stored radiographs (364 x 256, mostly landscape).
ASPECT = 1.42


@dataclass(frozen=True)
class CxrRow:
    """One image of ``labels.csv``.

    Attributes:
        path: relative to the data folder.
        split: official split (``train``, ``val``, ``test``).
        label: 0 normal, 1 pneumonia.
        patient_id: grouping key (``IM-0117``, ``person123_bacteria``...).
        person_flag: True when the file's ``personN`` number (read without the subtype) also occurs
            in the official train split (column ``person_num_in_other_official_split``).
    """

    path: str
    split: str
    label: int
    patient_id: str
    person_flag: bool


def data_root(data: Path | str | None = None) -> Path:
    """The folder holding ``labels.csv``: ``data`` itself, or ``<data>/cxr_pneumonia_kermany``;
    default: under the data directory (``MEDVIZ_DATA_DIR``)."""
    root = Path(data) if data is not None else get_settings().data_dir / FOLDER
    for cand in (root, root / FOLDER):
        if (cand / "labels.csv").is_file():
            return cand
    raise DataError(f"no labels.csv under {root} (expected the {FOLDER} layout; set --data DIR)")


def read_labels(root: Path) -> list[CxrRow]:
    """The rows of ``<root>/labels.csv`` (columns ``path``, ``split``, ``label``, ``patient_id``; the
    flag column ``person_num_in_other_official_split`` is optional)."""
    path = Path(root) / "labels.csv"
    try:
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        raise DataError(f"cannot read {path}: {e}") from e
    need = {"path", "split", "label", "patient_id"}
    if not rows or not need <= set(rows[0]):
        raise DataError(f"{path}: needs the columns {', '.join(sorted(need))} and at least one row")
    try:
        return [CxrRow(r["path"], r["split"], int(r["label"]), r["patient_id"],
                       bool((r.get("person_num_in_other_official_split") or "").strip())) for r in rows]
    except ValueError as e:
        raise DataError(f"{path}: bad label ({e})") from e


def patient_split(rows: list[CxrRow], seed: int = 0, val_fraction: float = VAL_FRACTION) -> dict[str, list[CxrRow]]:
    """Split the official ``train`` rows into ``train`` / ``val`` by patient, stratified by class.

    The patients of each class (a patient's class: the label of their first image; in this layout
    the id carries the class) are shuffled with ``numpy.random.default_rng(seed)`` and the first
    ``round(val_fraction * n)`` (at least 1) go to val. No ``patient_id`` is on both sides.

    Returns:
        ``{"train": [...], "val": [...]}`` in ``labels.csv`` order.
    """
    train = [r for r in rows if r.split == "train"]
    first: dict[str, int] = {}
    for r in train:
        first.setdefault(r.patient_id, r.label)
    rng = np.random.default_rng(seed)
    val_ids: set[str] = set()
    for k in sorted(set(first.values())):
        ids = sorted(p for p, lab in first.items() if lab == k)
        n_val = max(1, round(val_fraction * len(ids))) if len(ids) > 1 else 0
        val_ids.update(ids[i] for i in rng.permutation(len(ids))[:n_val])
    return {"train": [r for r in train if r.patient_id not in val_ids],
            "val": [r for r in train if r.patient_id in val_ids]}


def split_rows(rows: list[CxrRow], split: str, seed: int = 0) -> list[CxrRow]:
    """The rows of one of :data:`SPLITS` (``train``/``val``: :func:`patient_split` of ``train/``)."""
    if split in ("train", "val"):
        return patient_split(rows, seed)[split]
    if split == "official_val":
        return [r for r in rows if r.split == "val"]
    if split == "test":
        return [r for r in rows if r.split == "test"]
    raise DataError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")


def read_image(root: Path, row: CxrRow) -> np.ndarray:
    """The stored radiograph ``(H, W)`` uint8 (converted to grey)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(Path(root) / row.path) as im:
            return np.asarray(im.convert("L"))
    except (OSError, UnidentifiedImageError) as e:
        raise DataError(f"{row.path}: not a readable image ({e})") from e


@dataclass(frozen=True)
class CxrSplit:
    """One split, preprocessed for a model.

    Attributes:
        x: ``(N, 1, size, size)`` float32 in [0, 1] (:func:`preprocess_batch`).
        y: ``(N,)`` int64 labels.
        rows: the ``labels.csv`` rows, same order.
    """

    x: np.ndarray
    y: np.ndarray
    rows: list[CxrRow]

    @property
    def person_flag(self) -> np.ndarray:
        """``(N,)`` bool: the images flagged in ``person_num_in_other_official_split``."""
        return np.array([r.person_flag for r in self.rows], dtype=bool)


def read_split(split: str, data: Path | str | None = None, seed: int = 0,
               limit: int | None = None) -> tuple[list[np.ndarray], list[CxrRow]]:
    """The stored radiographs ``(H, W)`` uint8 of one split and their rows (``limit``: the first N rows only)."""
    root = data_root(data)
    rows = split_rows(read_labels(root), split, seed)[:limit]
    if not rows:
        raise DataError(f"{root}: the {split} split is empty")
    return [read_image(root, r) for r in rows], rows


def load_split(split: str, size: int, data: Path | str | None = None, seed: int = 0,
               limit: int | None = None) -> CxrSplit:
    """Read and preprocess one split (``limit``: the first N rows only, for quick checks)."""
    images, rows = read_split(split, data, seed, limit)
    return CxrSplit(preprocess_batch(images, 1, size), np.array([r.label for r in rows], dtype=np.int64), rows)
