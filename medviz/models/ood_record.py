"""The record of a fitted out-of-distribution detector kept in the manifest's ``ood`` field
(:class:`medviz.models.specs.OODSpec`), shared by the classifiers' and the sequence model's detectors: which
test looks a refit keeps, the checked statistics file, the data folder the families are read from, the
recording of the one test look in card and manifest, and the fit / record command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from medviz.config import get_settings
from medviz.models.errors import RegistryError
from medviz.models.ood_stats import OODError
from medviz.models.registry import ModelEntry, get_entry, sha256_file, upsert_entry, with_field
from medviz.models.specs import OODSpec
from medviz.types import MedvizError


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


#: The heading of a model card's current OOD section (an earlier one is renamed by :func:`record_look`).
OOD_HEADING = "## Out-of-distribution detection"
LOOKS_HEADING = "### Test looks of the OOD detector"


def check_look(entry: ModelEntry, result: dict[str, Any]) -> None:
    """Refuse to record ``result`` as ``entry``'s OOD test look unless it is an OOD evaluation of this entry with
    its registered statistics, the detector has no look yet (it is computed once) and the entry has a card.

    Raises:
        RegistryError: in words, which of these fails.
    """
    o = getattr(entry.spec, "ood", None)
    if o is None or result.get("model") != entry.name or not result.get("ood"):
        raise RegistryError(f"the result is not an OOD evaluation of {entry.name!r} with fitted statistics")
    if result.get("ood_sha256") != o.sha256:
        raise RegistryError("the result was computed with other OOD statistics than the registered ones")
    if o.record.get("test"):
        raise RegistryError(f"the OOD test look of {entry.name!r}'s detector is already recorded")
    if not entry.card_path or not entry.card_path.exists():
        raise RegistryError(f"{entry.name!r} has no model card to record the OOD test look in")


def record_look(entry: ModelEntry, section: str, replaced: str, summary: dict[str, Any], date: str) -> None:
    """Append ``section`` (starting with :data:`OOD_HEADING`) to the card, heading the section before it as an
    earlier ``replaced`` ("detector", "rule"), superseded, and write the look's ``summary`` to the manifest's
    ``ood.test`` with its date and command. Call :func:`check_look` first."""
    path = entry.card_path
    text = path.read_text().replace(f"{OOD_HEADING}\n", f"{OOD_HEADING}: an earlier {replaced}, superseded\n").replace(
        f"{LOOKS_HEADING}\n", f"### Test look of that {replaced}\n")
    path.write_text(text.rstrip() + "\n\n" + section)
    upsert_entry(with_field(entry, "ood", "test", value={
        "date": date, **summary, "command": f"python -m medviz.evaluate --model {entry.name} --ood --json"}),
        entry.weights_dir)


def run_cli(argv: list[str] | None, prog: str, what: str, fit: Callable[..., dict[str, Any]],
            record: Callable[[ModelEntry, dict[str, Any]], None],
            after_fit: Callable[[ModelEntry, dict[str, Any]], None] | None = None) -> int:
    """``python -m <prog> --model NAME [--data DIR] [--device D] [--card RESULT.json]``: fit ``what``'s detector
    (``fit(entry, data, device)``; then ``after_fit(entry before the fit, field written)``), or record a saved
    test look (``record(entry, result)``). Errors print in words and return 2."""
    p = argparse.ArgumentParser(prog=prog, description=f"Fit a {what}'s out-of-distribution detector (train + val only).")
    p.add_argument("--model", required=True, help=f"registered {what} name")
    p.add_argument("--data", type=Path, default=None, help="data directory (default: MEDVIZ_DATA_DIR)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--card", type=Path, default=None, metavar="RESULT.json",
                   help="instead of fitting: record this saved `python -m medviz.evaluate --ood --json` result (the "
                        "one test look) in the model card and the manifest's ood.test")
    args = p.parse_args(argv)
    try:
        entry = get_entry(args.model)
        if args.card is not None:
            record(entry, json.loads(args.card.read_text()))
            print(f"recorded the OOD test look in {entry.spec.card}")
            return 0
        ood = fit(entry, args.data, args.device)
        if after_fit is not None:
            after_fit(entry, ood)
    except (MedvizError, RegistryError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({k: v for k, v in ood.items() if k != "candidates"}, indent=2))
    return 0
