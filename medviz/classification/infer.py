"""Classifier inference on one image: preprocessing, input guardrails, calibrated prediction and TTA.

The model may be shared by every browser session (``st.cache_resource``): nothing here changes its
weights, mode or hooks; every forward pass runs inside :func:`medviz.models.runtime.using` (the
model's lock, eval mode, ``torch.inference_mode``), as Grad-CAM in :mod:`medviz.explain` does.

Example:
    >>> model, entry = load_model("breast_resnet")                       # doctest: +SKIP
    >>> prep = prepare_input(volume.array[0], entry.spec)                 # doctest: +SKIP
    >>> predict(model, entry.spec, prep.x).probs.sum()                    # doctest: +SKIP
    1.0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from medviz.classification.calibration import softmax
from medviz.classification.preprocess import ClassifyError
from medviz.models.runtime import model_device, using
from medviz.models.specs import ClassifierSpec


@dataclass(frozen=True)
class Prediction:
    """Calibrated class probabilities of one image (``probs`` sums to 1)."""

    classes: list[str]
    logits: np.ndarray
    probs: np.ndarray
    probs_uncalibrated: np.ndarray
    temperature: float

    @property
    def top(self) -> int:
        return int(np.argmax(self.probs))


@dataclass(frozen=True)
class TTAResult:
    """Calibrated probabilities under deterministic test-time augmentations.

    Attributes:
        names: augmentation names, ``(A,)``.
        samples: ``(A, K)`` probabilities per augmentation.
        mean: ``(K,)`` mean probability (sums to 1).
        std: ``(K,)`` spread (standard deviation) across augmentations.
    """

    names: list[str]
    samples: np.ndarray
    mean: np.ndarray
    std: np.ndarray


def batch_logits(model: Any, x: np.ndarray, device: str = "cpu", batch_size: int = 256) -> np.ndarray:
    """Logits of a preprocessed stack ``(N, C, S, S)`` -> ``(N, K)`` float64, inside
    :func:`medviz.models.runtime.using` (lock, eval and inference mode; every module's mode restored)."""
    import torch

    out = []
    with using(model) as m:
        for i in range(0, len(x), batch_size):
            xb = torch.as_tensor(np.ascontiguousarray(x[i:i + batch_size]), dtype=torch.float32, device=device)
            out.append(m(xb).float().cpu().numpy())
    if not out:
        raise ClassifyError("no images to classify")
    return np.concatenate(out).astype(np.float64)


def predict(model: Any, spec: ClassifierSpec, x: np.ndarray) -> Prediction:
    """Calibrated probabilities of one preprocessed image ``(C, S, S)`` (deterministic).

    Returns:
        :class:`Prediction` with ``softmax(logits / T)``, ``T`` = the spec's temperature.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.shape != spec.input.shape:
        raise ClassifyError(f"input must be preprocessed to {spec.input.shape}, not {x.shape}")
    z = batch_logits(model, x[None], model_device(model))[0]
    t = spec.temperature
    return Prediction(list(spec.classes), z, softmax(z, t), softmax(z), t)


def _tta_views(x: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Deterministic views of ``(C, S, S)``: identity, flip, 2-px shifts, +-8 degree rotations, 10 % zoom."""
    from monai.transforms import Affine

    s = x.shape[-1]
    d = max(1.0, round(2 * s / 28))
    specs = [("identity", {}), ("shift right", {"translate_params": (0, d)}), ("shift left", {"translate_params": (0, -d)}),
             ("shift down", {"translate_params": (d, 0)}), ("shift up", {"translate_params": (-d, 0)}),
             ("rotate +8°", {"rotate_params": np.deg2rad(8)}), ("rotate -8°", {"rotate_params": -np.deg2rad(8)}),
             ("zoom 1.1", {"scale_params": (1 / 1.1, 1 / 1.1)})]
    views = [x]
    for _, kw in specs[1:]:
        out, _ = Affine(**kw, padding_mode="zeros", mode="bilinear", image_only=False)(x)
        views.append(np.asarray(out, dtype=np.float32))
    names = [n for n, _ in specs] + ["flip"]
    views.append(x[:, :, ::-1].copy())
    return names, np.stack(views).astype(np.float32)


def predict_tta(model: Any, spec: ClassifierSpec, x: np.ndarray) -> TTAResult:
    """Calibrated probabilities under :func:`_tta_views`; their spread is an uncertainty cue."""
    names, views = _tta_views(np.asarray(x, dtype=np.float32))
    p = softmax(batch_logits(model, views, model_device(model)), spec.temperature)
    return TTAResult(names, p, p.mean(axis=0), p.std(axis=0))
