"""Patient-level cross-validation folds of a segmentation folder (``--folds K --fold I``).

The pool is every case of the folder's ``train`` and ``val`` splits (``splits.json``), never ``test``; a
folder without ``splits.json`` pools all its cases. The pool is sorted, shuffled with ``seed`` and dealt
round-robin into ``k`` folds, so the folds are disjoint by patient, cover the pool once and differ in size
by at most one case. Fold ``i`` is the validation set of the run trained with ``--fold i``; the other folds
are its training set. The same ``(k, seed)`` always gives the same folds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medviz.datasets.lgg import read_splits
from medviz.segmentation.data import cases
from medviz.types import MedvizError


class FoldError(MedvizError):
    """Fold settings that do not fit the folder (too few cases, fold index out of range)."""


def patient_folds(case_ids: list[str], k: int, seed: int = 0) -> list[list[str]]:
    """``k`` disjoint folds (each sorted) covering ``case_ids`` once; sizes differ by at most one.

    Raises:
        FoldError: ``k < 2`` or fewer cases than folds.
    """
    pool = sorted(set(case_ids))
    if k < 2 or len(pool) < k:
        raise FoldError(f"{k} folds need k >= 2 and at least k cases; the pool has {len(pool)}")
    order = np.random.default_rng(seed).permutation(len(pool))
    return [sorted(pool[j] for j in order[i::k]) for i in range(k)]


def fold_pool(root: Path) -> list[str]:
    """The cases cross-validation may use: train + val of ``splits.json`` (all cases without one)."""
    if read_splits(root) is None:
        return cases(root, None)
    return sorted(set(cases(root, "train")) | set(cases(root, "val")))


def folds_of(root: Path, k: int, seed: int = 0) -> list[list[str]]:
    """The ``k`` folds of ``root``'s pool (:func:`fold_pool`)."""
    return patient_folds(fold_pool(root), k, seed)


def held_out(folds: list[list[str]], fold: int) -> dict[str, list[str]]:
    """``{"train": cases of the other folds, "val": cases of fold `fold`}`` of ``folds``.

    Raises:
        FoldError: ``fold`` outside ``0..len(folds)-1``.
    """
    if not 0 <= fold < len(folds):
        raise FoldError(f"fold {fold} is not one of 0..{len(folds) - 1}")
    return {"train": sorted(c for i, f in enumerate(folds) if i != fold for c in f), "val": folds[fold]}


def fold_split(root: Path, k: int, fold: int, seed: int = 0) -> dict[str, list[str]]:
    """:func:`held_out` of the ``k`` folds of ``root`` (:func:`folds_of`)."""
    return held_out(folds_of(root, k, seed), fold)
