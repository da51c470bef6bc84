"""Classify image files from the command line, abstaining outside the model's domain.

``python -m medviz.predict --model NAME FILE... [--json] [--slice K]``

Each file is read by the same loaders as an upload (:func:`medviz.io.load_path`: DICOM, PNG/JPEG,
NIfTI, zips, folders), its middle slice (or ``--slice``) is prepared as on the Classify page (default
window, :func:`medviz.classification.preprocess.prepare_input`) and scored by the model's
out-of-distribution detector (:mod:`medviz.classification.ood`). With ``--json`` one JSON object per
file is printed, one per line::

    {"file", "model", "abstain", "ood_score", "ood_threshold", "ood_score_name", "abstain_reasons",
     "probs" (class -> probability shown on the page), "probability" (which one, and its test ECE),
     "prediction" (null when abstaining), "prediction_if_shown" (the arg-max class even when abstaining),
     "warnings", "error" (null, or why the file could not be classified, in words)}

The exit status is 0 when every file was classified (abstaining counts), 1 when a file failed, 2 for a
bad model name. This module sits beside :mod:`medviz.evaluate`, above the task packages.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from medviz.classification.calibration import shown_probability
from medviz.classification.infer import predict
from medviz.classification.ood import assess, load_stats
from medviz.classification.preprocess import prepare_input, volume_slice, window_choices
from medviz.config import select_device
from medviz.constants import Task
from medviz.io import load_path
from medviz.models.registry import get_entry
from medviz.models.weights import load_model
from medviz.types import LoadError, MedvizError


def predict_file(model: Any, entry: Any, stats: Any, path: Path, index: int | None = None) -> dict[str, Any]:
    """The result object of one file (``error`` set, in words, when it cannot be classified)."""
    spec = entry.spec
    out: dict[str, Any] = {"file": str(path), "model": spec.name, "abstain": None, "ood_score": None,
                           "ood_threshold": None if stats is None else stats.threshold,
                           "ood_score_name": None if stats is None else stats.score, "abstain_reasons": [],
                           "probs": None, "probability": None, "prediction": None, "prediction_if_shown": None,
                           "warnings": [], "error": None}
    try:
        result = load_path(path)
        volume = result.series[0].volume
        image = volume_slice(volume, index)
        windows = window_choices(volume, image)
        prep = prepare_input(image, spec, next(iter(windows.values())) if windows else None, volume.modality,
                             volume.shape[0], volume.meta)
        ood = assess(model, spec, stats, prep, image, volume.modality)
        pred = predict(model, spec, prep.x)
    except (LoadError, MedvizError) as e:
        out["error"] = f"could not classify: {e}"
        return out
    shown = shown_probability(spec.temperature, spec.test_metrics)
    notes = [f"{p.source}: {p.problem}" for p in result.problems] + list(result.notes)
    if len(result.series) > 1:
        notes.append(f"{len(result.series)} images or series found; the first ({result.series[0].label}) is classified")
    top = spec.classes[pred.top]
    out.update(abstain=ood.abstain, ood_score=ood.score, abstain_reasons=ood.reasons,
               probs={c: float(p) for c, p in zip(spec.classes, pred.probs)},
               probability={"label": shown.label, "temperature": shown.temperature, "test_ece": shown.test_ece,
                            "test_ece_softmax": shown.test_ece_softmax, "text": shown.sentence()},
               prediction=None if ood.abstain else top, prediction_if_shown=top,
               warnings=list(prep.warnings) + list(volume.warnings) + notes)
    return out


def _line(r: dict[str, Any]) -> str:
    if r["error"]:
        return f"{r['file']}: {r['error']}"
    if r["abstain"]:
        return f"{r['file']}: abstains ({'; '.join(r['abstain_reasons'])})"
    p = r["probs"][r["prediction"]]
    return f"{r['file']}: {r['prediction']} ({p:.1%} {r['probability']['label']})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m medviz.predict", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="registered classifier (python -m medviz.models list)")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE", help="DICOM, PNG/JPEG, NIfTI, zip or folder")
    p.add_argument("--slice", type=int, default=None, help="slice index of 3D studies (default: the middle slice)")
    p.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    p.add_argument("--json", action="store_true", help="one JSON object per file, one per line")
    args = p.parse_args(argv)
    try:
        entry = get_entry(args.model)
        if entry.task != Task.CLASSIFICATION:
            raise MedvizError(f"{args.model!r} is a {entry.task} model; medviz.predict classifies images")
        model, entry = load_model(entry.name, device=select_device(args.device), weights_dir=entry.weights_dir)
        stats = load_stats(entry)
    except MedvizError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    failed = False
    for path in args.files:
        r = predict_file(model, entry, stats, path, args.slice)
        failed |= r["error"] is not None
        print(json.dumps(r) if args.json else _line(r))
        if r["error"] and args.json:
            print(f"error: {r['error']}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
