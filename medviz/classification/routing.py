"""Which classifier fits an image: a full-size radiograph goes to a model trained on radiographs, a
MedMNIST thumbnail to a 28-px model (the Classify page's automatic model choice).

Example:
    >>> route = choose_classifier(image, "OT", "pneumonia_resnet", {e.name: e.spec for e in entries})
    >>> route.name, route.reason
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from medviz.classification.preprocess import input_abstain_reasons
from medviz.models.specs import ClassifierSpec

#: Models whose training size is within this factor of the best one's count as fitting equally well.
SIZE_SLACK = 2.0


@dataclass(frozen=True)
class Route:
    """The model chosen for an image.

    Attributes:
        name: the classifier to use.
        switched: True when it is not the model the user selected.
        reason: one sentence saying which model and why (sizes in pixels).
    """

    name: str
    switched: bool
    reason: str


def _misfit(spec: ClassifierSpec, side: int) -> float:
    """How far the image's short side is from the model's training images, in octaves."""
    return abs(math.log2(max(side, 1) / max(spec.input.training_size, 1)))


def choose_classifier(image: np.ndarray, modality: str | None, selected: str,
                      specs: Mapping[str, ClassifierSpec]) -> Route:
    """The classifier of ``specs`` whose training images are closest in size to ``image``.

    Only models whose input checks pass (modality, colour/grey; see
    :func:`~medviz.classification.preprocess.input_abstain_reasons`) compete. Among those within a factor
    :data:`SIZE_SLACK` of the best size match, the ``selected`` model is kept, else one of the same
    modality as ``selected``, else the first by name. When no model fits, ``selected`` is kept (its
    guardrails then say why).

    Args:
        image: ``(H, W)`` or ``(H, W, 3)`` as loaded.
        modality: the image's modality code (``None``/``OT``: unknown).
        selected: the model the user picked (a key of ``specs``).
        specs: the registered classifiers.
    """
    side = int(min(np.asarray(image).shape[:2]))
    fits = {n: s for n, s in specs.items() if not input_abstain_reasons(image, s.input, modality)}
    if not fits:
        return Route(selected, False, f"No registered classifier takes this image; {selected} is kept.")
    best = min(_misfit(s, side) for s in fits.values())
    near = sorted(n for n, s in fits.items() if _misfit(s, side) <= best + math.log2(SIZE_SLACK))
    mine = specs[selected].input.modality.upper() if selected in specs else ""
    same = [n for n in near if fits[n].input.modality.upper() == mine]
    name = selected if selected in near else (same or near)[0]
    spec = specs[name]
    size = f"{spec.input.training_size}-px" if spec.input.native_size else f"{spec.input.size}-px"
    what = "a full-size image" if side >= 4 * 28 else "a thumbnail"
    reason = (f"{name}: the image is {what} (short side {side} px) and {name} was trained on {size} "
              f"{spec.input.label} images at a {spec.input.size}x{spec.input.size} input")
    if name != selected and selected in specs:
        other = specs[selected].input
        reason += (f"; {selected} (trained on {other.training_size}-px images) would "
                   + (f"reduce it to {other.size} px." if other.size < side else f"enlarge it to {other.size} px."))
    else:
        reason += "."
    if spec.ood is None:
        reason += f" {name} has no out-of-distribution detector: it answers for any image that passes the input checks."
    return Route(name, name != selected, reason)
