"""The record of a fitted out-of-distribution detector kept in the manifest's ``ood`` field
(:class:`medviz.models.specs.OODSpec`), shared by the classifiers' and the sequence model's detectors: which
test looks a refit keeps, the checked statistics file, and the data folder the families are read from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from medviz.config import get_settings
from medviz.models.ood_stats import OODError
from medviz.models.registry import sha256_file
from medviz.models.specs import OODSpec


def float32(a: np.ndarray) -> np.ndarray:
    """``a`` rounded to float32 as stored, so thresholds hold for scores computed from the file."""
    return np.asarray(a).astype(np.float32).astype(np.float64)


def earlier_looks(ood: OODSpec | None) -> dict[str, list[dict[str, Any]]]:
    """The test looks of the detector ``ood`` and of those before it, for a refit that replaces it:
    ``{"earlier_tests": [...]}`` with each look's score, threshold, val abstention and criterion, or ``{}``."""
    if ood is None:
        return {}
    looks = [dict(t) for t in ood.record.get("earlier_tests", ())]
    if ood.record.get("test"):
        looks.append({**dict(ood.record["test"]), "score": ood.score, "threshold": ood.threshold,
                      "val_abstention": ood.val_abstention, "criterion": ood.record.get("criterion", "")})
    return {"earlier_tests": looks} if looks else {}


def unchanged_detector(ood: OODSpec | None, score: str, threshold: float, layers: list[str],
                       shrinkage: list[float], criterion: str) -> bool:
    """Whether a refit chose the detector ``ood`` already is: the same score, threshold, layers, fitted statistics
    (the shrinkage of each Gaussian; the Gaussians are fitted on train, deterministically) and rule (the
    criterion's text). Its test look then stands: the look is a function of these alone."""
    return (ood is not None and ood.score == score and ood.threshold == threshold
            and tuple(ood.layers) == tuple(layers) and list(ood.record.get("shrinkage", ())) == list(shrinkage)
            and ood.record.get("criterion", "") == criterion)


def test_looks(ood: OODSpec | None, unchanged: bool) -> dict[str, Any]:
    """The look keys of a refitted detector's ``ood`` field: kept as they are for an :func:`unchanged_detector`,
    else the current look moved to ``earlier_tests`` (:func:`earlier_looks`)."""
    if not unchanged or ood is None:
        return earlier_looks(ood)
    return {k: ood.record[k] for k in ("test", "earlier_tests") if ood.record.get(k)}


def checked_arrays(path: Path, sha256: str) -> dict[str, np.ndarray]:
    """The arrays of a statistics file that matches its manifest checksum.

    Raises:
        OODError: the file is missing or fails its checksum (in words).
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    if not path.is_file():
        raise OODError(f"OOD statistics {path.name} are missing")
    actual = sha256_file(path)
    if actual != sha256:
        raise OODError(f"OOD statistics {path.name} fail their checksum (manifest {sha256[:12]}…, "
                       f"file {actual[:12]}…); refusing to use them")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise OODError(f"{path.name} is not a readable safetensors file: {e}") from e


def data_dir(data: Path | None) -> Path:
    """The data folder the OOD families are read from: ``data``, else ``MEDVIZ_DATA_DIR``."""
    root = Path(data) if data is not None else get_settings().data_dir
    if not root.is_dir():
        raise OODError(f"data folder {root} not found; set --data or MEDVIZ_DATA_DIR")
    return root


def stats_out_dir(out_dir: Path | None, register: bool, weights_dir: Path) -> Path:
    """Where a fit writes its statistics: ``out_dir``, else the registered weights folder, which only a
    registering fit may overwrite (a dry run with ``register=False`` must name another folder)."""
    if out_dir is None and not register:
        raise OODError("a fit that does not register must write its statistics to another folder (out_dir): "
                       "the registered file would no longer match its manifest checksum")
    return Path(out_dir or weights_dir)
