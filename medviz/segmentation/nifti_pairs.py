"""Reader for NIfTI image/label pair folders (one 3D volume per case), for 2D segmentation training.

Layouts (matched by file name, ``.nii`` or ``.nii.gz``)::

    <root>/images/<case>.nii.gz   + <root>/labels/<case>.nii.gz      (plain)
    <root>/imagesTr/<case>.nii.gz + <root>/labelsTr/<case>.nii.gz    (Medical Segmentation Decathlon)
    <root>/splits.json            optional: {"train": [case, ...], "val": [...], "test": [...]}

An nnU-Net channel suffix ``_0000`` on an image name is dropped when matching; hidden files
(``._x.nii.gz`` left by macOS tarballs) are ignored. Without ``splits.json`` the split is
deterministic and patient-level (:func:`hash_split`): cases ordered by the SHA-1 of their name,
the last 20 % (at least one) form ``val``, the rest ``train``; there is no ``test`` split then.

Both volumes are read with :func:`medviz.io.nifti.read_nifti` (reoriented to LPS+ ``(Z, Y, X)``,
intensities untouched apart from the header's scl_slope/inter) and must have the same shape and
affine; axial slices are ``array[k]``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from medviz.datasets.lgg import DataLayoutError, read_splits
from medviz.io.limits import InputTooLarge
from medviz.io.nifti import read_nifti
from medviz.types import LoadError

#: (image folder, label folder) pairs accepted, in order of preference.
LAYOUTS = (("images", "labels"), ("imagesTr", "labelsTr"))
VAL_FRACTION = 0.2
ACCEPTED = ("pairs.csv + images/ + masks/ (LGG PNG slices); images/ + labels/ or imagesTr/ + labelsTr/ "
            "(NIfTI image/label pairs, <case>.nii[.gz] in both)")


def layout_dirs(root: Path) -> tuple[Path, Path] | None:
    """``(image dir, label dir)`` of a NIfTI pair folder, or None when ``root`` is not one."""
    root = Path(root)
    for img, lbl in LAYOUTS:
        if (root / img).is_dir() and (root / lbl).is_dir():
            return root / img, root / lbl
    return None


def detect_layout(root: Path) -> str:
    """``"lgg"`` (``pairs.csv``) or ``"nifti"`` (image/label folders).

    Raises:
        DataLayoutError: neither layout; the message lists the accepted ones.
    """
    root = Path(root)
    if (root / "pairs.csv").is_file():
        return "lgg"
    if layout_dirs(root) is not None:
        return "nifti"
    what = "does not exist" if not root.exists() else "has an unknown layout"
    raise DataLayoutError(f"segmentation data folder {root} {what}; accepted layouts: {ACCEPTED}")


def _case_name(path: Path) -> str | None:
    name = path.name
    if name.startswith("."):
        return None
    for suffix in (".nii.gz", ".nii"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return None


def _listing(folder: Path) -> dict[str, Path]:
    out = {}
    for p in sorted(folder.iterdir()):
        case = _case_name(p)
        if case is not None and p.is_file():
            if case in out:
                raise DataLayoutError(f"{folder}: case {case!r} appears twice ({out[case].name}, {p.name})")
            out[case] = p
    return out


def find_pairs(root: Path) -> dict[str, tuple[Path, Path]]:
    """``{case: (image path, label path)}`` sorted by case name.

    Raises:
        DataLayoutError: not a pair folder, no pairs, or images / labels without a partner.
    """
    dirs = layout_dirs(root)
    if dirs is None:
        raise DataLayoutError(f"{root} is not a NIfTI pair folder; accepted layouts: {ACCEPTED}")
    images, labels = _listing(dirs[0]), _listing(dirs[1])
    images = {(c[:-5] if c.endswith("_0000") and c not in labels and c[:-5] in labels else c): p
              for c, p in images.items()}
    lonely_img, lonely_lbl = sorted(set(images) - set(labels)), sorted(set(labels) - set(images))
    if lonely_img or lonely_lbl:
        parts = [f"{len(lonely_img)} image(s) without a label, e.g. {lonely_img[0]}" if lonely_img else "",
                 f"{len(lonely_lbl)} label(s) without an image, e.g. {lonely_lbl[0]}" if lonely_lbl else ""]
        raise DataLayoutError(f"{root}: unmatched files: {'; '.join(p for p in parts if p)}")
    if not images:
        raise DataLayoutError(f"{root}: {dirs[0].name}/ and {dirs[1].name}/ hold no .nii / .nii.gz files")
    return {c: (images[c], labels[c]) for c in sorted(images)}


def hash_split(case_ids: list[str], val_fraction: float = VAL_FRACTION) -> dict[str, list[str]]:
    """Deterministic patient-level split: cases ordered by SHA-1 of the name, the last
    ``round(val_fraction * n)`` (at least 1 when n >= 2) go to ``val``, the rest to ``train``."""
    order = sorted(case_ids, key=lambda c: hashlib.sha1(c.encode()).hexdigest())
    n_val = max(1, round(val_fraction * len(order))) if len(order) >= 2 else 0
    return {"train": sorted(order[: len(order) - n_val]), "val": sorted(order[len(order) - n_val:]), "test": []}


def split_source(root: Path) -> str:
    """In words, where the split comes from (for the dataset summary)."""
    if read_splits(root) is not None:
        return "splits.json"
    return (f"no splits.json: deterministic patient-level hash split {1 - VAL_FRACTION:.0%} train / "
            f"{VAL_FRACTION:.0%} val, no test")


def cases(root: Path, split: str | None = None) -> list[str]:
    """Sorted case names of ``split`` (all cases when ``split`` is None).

    Raises:
        DataLayoutError: unknown split name, or a split naming cases that have no pair.
    """
    all_cases = list(find_pairs(root))
    if split is None:
        return all_cases
    splits = read_splits(root)
    if splits is None:
        splits = hash_split(all_cases)
    if split not in splits:
        raise DataLayoutError(f"split {split!r} not in {Path(root) / 'splits.json'} (has {', '.join(splits)})")
    absent = sorted(set(splits[split]) - set(all_cases))
    if absent:
        raise DataLayoutError(f"split {split!r} names {len(absent)} case(s) without an image/label pair, "
                              f"e.g. {absent[0]}")
    return sorted(splits[split])


def _read(path: Path, what: str, case: str):
    try:
        return read_nifti(path.read_bytes(), path.name)
    except (OSError, ValueError, InputTooLarge) as e:
        raise LoadError(path.name, f"case {case}: cannot read the {what}: {e}") from e


def load_case(root: Path, case: str, label_value: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One case as axial slice stacks in LPS+ order.

    Args:
        root: the pair folder.
        case: case name (file name without ``.nii[.gz]``).
        label_value: foreground is ``label == label_value``; None: ``label > 0``.

    Returns:
        ``(image, mask)``: image ``(Z, Y, X, C)`` float32 (C = 1, or 3 for RGB NIfTI), raw
        intensities (e.g. HU for CT); mask ``(Z, Y, X)`` uint8 in {0, 1}.

    Raises:
        DataLayoutError: unknown case; image and label differ in shape or affine; a label volume
            that is RGB or holds non-integer values.
        medviz.types.LoadError: a file nibabel cannot read.
    """
    pairs = find_pairs(root)
    if case not in pairs:
        raise DataLayoutError(f"case {case!r} has no image/label pair in {root}")
    img_path, lbl_path = pairs[case]
    image, label = _read(img_path, "image", case), _read(lbl_path, "label", case)
    if label.array.ndim != 3:
        raise DataLayoutError(f"case {case}: label {lbl_path.name} is not a single-channel volume "
                              f"({label.array.shape})")
    if image.array.shape[:3] != label.array.shape:
        raise DataLayoutError(f"case {case}: image {img_path.name} has shape {image.array.shape[:3]} (Z, Y, X) but "
                              f"label {lbl_path.name} has {label.array.shape}")
    if not np.allclose(image.affine, label.affine, atol=1e-3, rtol=1e-5):
        raise DataLayoutError(f"case {case}: image and label affines differ (voxel grids do not match):\n"
                              f"{np.array2string(image.affine, precision=3)}\nvs\n"
                              f"{np.array2string(label.affine, precision=3)}")
    lab = label.array
    if not np.array_equal(lab, np.round(lab)):
        raise DataLayoutError(f"case {case}: label {lbl_path.name} holds non-integer values (interpolated labels?)")
    mask = (lab > 0) if label_value is None else (lab == label_value)
    x = image.array.astype(np.float32) if image.array.ndim == 4 else image.array[..., None].astype(np.float32)
    return x, mask.astype(np.uint8)
