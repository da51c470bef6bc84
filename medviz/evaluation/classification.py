"""Evaluate a registered classifier on a MedMNIST split; also writes classifier model cards.

``python -m medviz.evaluate --model breast_resnet --json [--data DIR|FILE.npz] [--split test] [--limit N]``
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medviz.models.registry import ModelEntry


@dataclass(frozen=True)
class EvalRun:
    """Everything the evaluation view needs about one model on one split.

    Attributes:
        images: raw images as stored, ``(N, H, W)`` or ``(N, H, W, 3)`` uint8.
        labels: ``(N,)`` int labels.
        logits: ``(N, K)`` float64.
        probs: ``(N, K)`` uncalibrated softmax.
        probs_calibrated: ``(N, K)`` softmax of ``logits / temperature``.
        temperature: from the manifest (fitted on val at export).
        classes: class names.
    """

    images: np.ndarray
    labels: np.ndarray
    logits: np.ndarray
    probs: np.ndarray
    probs_calibrated: np.ndarray
    temperature: float
    classes: list[str]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N images of the split")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for the 95%% intervals")


def run_model(model: Any, entry: ModelEntry, split: str = "test", data: Path | None = None,
              limit: int | None = None, device: str = "cpu") -> EvalRun:
    """Predict one split of the model's data set with ``model`` (not modified).

    Args:
        data: ``.npz`` file or a folder holding it (default: the data directory).
        limit: keep only the first ``limit`` images.
    """
    from medviz.calibration import softmax
    from medviz.classify import batch_logits
    from medviz.data.medmnist import DataError, load_npz_split, look_up_dataset, preprocess_batch, resolve_npz

    key = entry.get("dataset_key")
    if not key or key == "folder":
        raise DataError(f"{entry.name!r} was trained on a folder set; evaluate it with its own split folders")
    images, labels = load_npz_split(resolve_npz(look_up_dataset(key), data), split)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    spec = entry.raw["input"]
    x = preprocess_batch(images, spec["channels"], spec["size"])
    logits = batch_logits(model, x, device)
    t = float(entry.get("temperature", 1.0))
    return EvalRun(images, labels, logits, softmax(logits), softmax(logits, t), t, list(entry.raw["classes"]))


def summarise(run: EvalRun, n_boot: int = 1000) -> dict[str, Any]:
    """AUC/ACC (calibration does not change them), 95 % bootstrap CIs, NLL and ECE before/after."""
    from medviz.calibration import expected_calibration_error, nll
    from medviz.evaluation.report import bootstrap_ci, classification_metrics

    m = classification_metrics(run.probs_calibrated, run.labels)
    ci = bootstrap_ci(run.probs_calibrated, run.labels, n_boot=n_boot)
    return {**m, "auc_ci95": ci["auc"], "acc_ci95": ci["acc"],
            "ece": expected_calibration_error(run.probs, run.labels),
            "ece_calibrated": expected_calibration_error(run.probs_calibrated, run.labels),
            "nll": nll(run.logits, run.labels), "nll_calibrated": nll(run.logits, run.labels, run.temperature),
            "temperature": run.temperature,
            "class_counts": np.bincount(run.labels, minlength=len(run.classes)).tolist()}


def evaluate(entry: ModelEntry, args: argparse.Namespace) -> dict[str, Any]:
    """The ``python -m medviz.evaluate`` result object for a classifier."""
    from medviz.config import select_device
    from medviz.models.weights import load_model

    device = select_device(getattr(args, "device", "auto"))
    model, entry = load_model(entry.name, device=device, weights_dir=entry.weights_dir)
    run = run_model(model, entry, args.split, args.data, getattr(args, "limit", None), device)
    s = summarise(run, getattr(args, "n_boot", 1000))
    refs = entry.get("references", [])
    base = next((r for r in refs if r["method"].startswith("ResNet-18 (28)")), None)
    beats = None if base is None or args.split != "test" or args.limit else bool(s["auc"] > base["auc"] and s["acc"] > base["acc"])
    return {"model": entry.name, "task": entry.task, "dataset": entry.get("dataset"), "split": args.split,
            "n": int(len(run.labels)), **s, "beats_resnet18_28": beats, "references": refs,
            "sha256": entry.raw["sha256"]}


def _fmt_ci(ci: list[float]) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def format_table(result: dict[str, Any]) -> str:
    """Human-readable table of :func:`evaluate`'s result with the published rows beneath."""
    lines = [f"{result['model']} ({result['dataset']}), split {result['split']}, n = {result['n']}",
             f"{'method':<36} {'AUC':>6} {'95% CI':>16} {'ACC':>6} {'95% CI':>16}",
             f"{'this model':<36} {result['auc']:>6.3f} {_fmt_ci(result['auc_ci95']):>16} "
             f"{result['acc']:>6.3f} {_fmt_ci(result['acc_ci95']):>16}"]
    for r in result.get("references", []):
        lines.append(f"{r['method']:<36} {r['auc']:>6.3f} {'':>16} {r['acc']:>6.3f}")
    lines.append(f"ECE {result['ece']:.3f} -> {result['ece_calibrated']:.3f} after temperature "
                 f"T = {result['temperature']:.3f}; NLL {result['nll']:.3f} -> {result['nll_calibrated']:.3f}")
    return "\n".join(lines)


def _arch_text(entry: dict[str, Any]) -> str:
    arch = entry["arch"]
    if arch["name"] != "Ensemble":
        return f"MONAI `{arch['name']}` (preset `{entry['arch_preset']}`), kwargs `{arch['kwargs']}`."
    members = arch["kwargs"]["members"]
    return (f"Ensemble of {len(members)} MONAI `{members[0]['name']}` (preset `{entry['arch_preset']}`) trained with "
            f"different seeds; output = log of the members' mean softmax probabilities "
            f"(`medviz.models.ensemble`). Member kwargs `{members[0]['kwargs']}`.")


def _loss_text(entry: dict[str, Any]) -> str:
    """The training loss as recorded at export (older entries: the default class-weighted loss)."""
    loss = entry.get("loss") or {"class_weights": "balanced", "label_smoothing": 0.0}
    weights = {"balanced": "class-weighted (inverse frequency)", "sqrt": "class-weighted (square root of inverse "
               "frequency)", "none": "unweighted"}.get(loss["class_weights"], loss["class_weights"])
    smoothing = f", label smoothing {loss['label_smoothing']:g}" if loss.get("label_smoothing") else ""
    return f"{weights} cross-entropy{smoothing}"


def _weights_text(entry: dict[str, Any]) -> str:
    shards = entry.get("shards")
    if not shards:
        return f"Weights `{entry['file']}`"
    names = [s["file"] for s in shards]
    return f"Weights in {len(names)} shards ({', '.join('`' + n + '`' for n in names)}; each file <= 16 MB)"


def _selection_text(entry: dict[str, Any], sel: dict[str, Any]) -> str:
    if entry["arch"]["name"] != "Ensemble":
        return (f"Selected on validation AUC: best epoch {sel.get('best_epoch')} of {sel.get('epochs_run')} "
                f"({sel.get('status')}).")
    return ("Assembled (no further training) from the selected weights of the member runs "
            f"{', '.join('`' + m + '`' for m in entry.get('members', []))}. Members trained with:\n\n"
            f"{entry.get('members_note') or '(not recorded)'}")


def model_card(entry: dict[str, Any]) -> str:
    """Markdown model card of a classifier manifest entry (every number comes from ``entry``)."""
    inp, m = entry["input"], entry["metrics"]
    test, val = m.get("test"), m["val"]
    rows = ["| split | n | AUC | 95% CI | ACC | 95% CI | ECE raw -> calibrated |", "|---|---|---|---|---|---|---|"]
    if test:
        rows.append(f"| test | {test['n']} | {test['auc']:.3f} | {_fmt_ci(test['ci95']['auc'])} | {test['acc']:.3f} | "
                    f"{_fmt_ci(test['ci95']['acc'])} | {test['ece']:.3f} -> {test['ece_calibrated']:.3f} |")
    rows.append(f"| val (selection) | {val['n']} | {val['auc']:.3f} | | {val['acc']:.3f} | | "
                f"{val['ece']:.3f} -> {val['ece_calibrated']:.3f} |")
    refs = "\n".join(f"| {r['method']} | {r['auc']:.3f} | {r['acc']:.3f} |" for r in entry.get("references", []))
    sel = m.get("selection", {})
    name = entry["name"]
    return f"""# {name}

{entry['dataset']} classifier ({len(entry['classes'])} classes: {', '.join(entry['classes'])}).
Research and teaching use only; **not a medical device**.

## Data and licence
{entry['data']['source']}. File `{entry['data']['file']}` under `MEDVIZ_DATA_DIR`. Licence: {entry['data']['license']}
(cite MedMNIST v2, Yang et al., Sci. Data 2023, and the source data set).

## Input and preprocessing
{inp['modality_label']} (modality `{inp['modality']}`), {inp['channels']} channel(s), square images; trained on
{inp.get('native_size') or 'folder'}-pixel 8-bit images. Preprocessing (`{entry['preprocessing']['function']}`):
{'; '.join(entry['preprocessing']['steps'])}. Training augmentation, batched per sample
(`ClassificationTask.augment`): random affine warp with MONAI's `AffineTransform` layer (rotation, 0.9-1.1 scale,
+-8 % shift), flips, gamma 0.8-1.25, Gaussian noise; loss: {_loss_text(entry)}.

## Architecture
{_arch_text(entry)}
Grad-CAM layer `{entry['cam_layer']}`. {_weights_text(entry)} ({entry['weights_dtype']}; fp16 kept only if
val AUC/ACC match fp32: {entry['fp16_check']}).

## Training (reproduce)
```
OMP_NUM_THREADS=1 {entry['command']}
```
{_selection_text(entry, sel)}
Temperature scaling fitted on val (torch LBFGS, NLL): T = {entry['temperature']:.4f}
(val NLL {val['nll']:.4f} -> {val['nll_calibrated']:.4f}).

## Results
{chr(10).join(rows)}

95 % CIs: percentile bootstrap, 1000 resamples of the test cases, seed 0. Reproduce with
`python -m medviz.evaluate --model {name}` (AUC: {'class-1 ROC AUC' if len(entry['classes']) == 2 else 'macro one-vs-rest'}; ACC: arg-max).

Published references (test split, ../shared/docs/BENCHMARKS.md):

| method | AUC | ACC |
|---|---|---|
{refs}

## Intended use and limits
Demonstrates calibrated classification and Grad-CAM on {inp.get('native_size') or ''}-pixel thumbnails in MedViz.
Not for diagnosis. Inputs far from the training data (other modality, views, adult vs paediatric, high-resolution
detail lost at 28 px) are out of scope; the Classify page warns on modality, channels, size, intensity and aspect
mismatches. Small test sets make AUC/ACC uncertain (see CIs). Temperature is fitted on a small validation split.
"""
