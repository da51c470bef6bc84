"""Grad-CAM family explanations (pytorch-grad-cam) that leave a shared model exactly as found.

Safety rules (the model may be shared by every browser session through ``st.cache_resource``):

* the CAM object is always used as ``with Method(model=..., target_layers=[...]) as cam:`` so its
  hooks are removed even on errors;
* the call runs inside :func:`medviz.models.runtime.using` with ``grad=True`` (the runtime every
  task's inference uses): it holds the model's lock, flows gradients to the *input* only (every
  parameter's ``requires_grad`` is off for the call, so no ``.grad`` is written into the weights) and
  restores every module's train/eval mode (pytorch-grad-cam calls ``model.eval()``), every
  ``requires_grad`` flag and every ``.grad``;
* the target layer is found by name with ``model.get_submodule`` (never ``eval``);
* one entry for every task: :func:`explain` takes a pytorch-grad-cam target, built by
  :func:`classifier_target` (classifiers) or :func:`segmentation_target` (segmenters).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import numpy as np

from medviz.models.runtime import model_device, using
from medviz.types import MedvizError


class CamMethod(StrEnum):
    GRADCAM = "GradCAM"
    GRADCAM_PP = "GradCAM++"
    HIRESCAM = "HiResCAM"
    EIGENCAM = "EigenCAM"


#: Colour maps offered for overlays (OpenCV names).
COLORMAPS = ("jet", "turbo", "inferno", "viridis", "hot", "magma")


class ExplainError(MedvizError):
    """Unknown method, layer or class, or a CAM that could not be computed."""


def _cam_class(method: str) -> Any:
    from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, HiResCAM

    classes = {CamMethod.GRADCAM: GradCAM, CamMethod.GRADCAM_PP: GradCAMPlusPlus,
               CamMethod.HIRESCAM: HiResCAM, CamMethod.EIGENCAM: EigenCAM}
    for m, cls in classes.items():
        if str(method).lower() == m.value.lower():
            return cls
    raise ExplainError(f"Unknown CAM method {method!r}; choose one of {', '.join(m.value for m in CamMethod)}")


def target_layers(model: Any, names: str) -> list[Any]:
    """The submodules named in ``names`` (one name such as ``"layer3"``, or several joined by commas,
    e.g. ``"members.0.layer3,members.1.layer3"`` for an ensemble: pytorch-grad-cam then averages the
    per-layer maps). ExplainError names the top-level choices."""
    out = []
    for name in (n.strip() for n in str(names).split(",")):
        try:
            out.append(model.get_submodule(name))
        except AttributeError as e:
            top = [n for n, _ in model.named_children()]
            raise ExplainError(f"Model has no layer {name!r} (top-level layers: {', '.join(top)})") from e
    return out


def describe_layers(names: str) -> str:
    """Readable form of a manifest ``cam_layer``: ``"layer3"`` -> "Grad-CAM layer `layer3`";
    ``"members.0.layer3,...,members.4.layer3"`` -> "Grad-CAM layer `layer3` of each of the 5 ensemble
    members (maps averaged)"."""
    parts = [n.strip() for n in str(names).split(",") if n.strip()]
    if len(parts) == 1:
        return f"Grad-CAM layer `{parts[0]}`"
    tails = {p.split(".", 2)[2] if p.startswith("members.") and p.count(".") >= 2 else p for p in parts}
    if len(tails) == 1 and all(p.startswith("members.") for p in parts):
        return f"Grad-CAM layer `{tails.pop()}` of each of the {len(parts)} ensemble members (maps averaged)"
    return "Grad-CAM layers " + ", ".join(f"`{p}`" for p in parts) + " (maps averaged)"


def classifier_target(k: int) -> Any:
    """The pytorch-grad-cam target of class ``k`` of a classifier (its logit ``k``).

    Example:
        >>> cam = explain(model, x, "layer3", classifier_target(1))   # doctest: +SKIP
    """
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    return ClassifierOutputTarget(int(k))


def segmentation_target(mask: np.ndarray, category: int = 0) -> Any:
    """The pytorch-grad-cam target of a segmentation: the sum of channel ``category``'s logits inside
    ``mask``, or over the whole image when ``mask`` is empty (so an empty prediction still explains).

    Args:
        mask: ``(H, W)`` mask of the image being explained (e.g. the predicted mask of one slice).
        category: output channel (0 for a one-channel foreground network).

    Example:
        >>> cam = explain(model, x[z], CAM_LAYER, segmentation_target(mask[z]))   # doctest: +SKIP
    """
    from pytorch_grad_cam.utils.model_targets import SemanticSegmentationTarget

    m = np.asarray(mask, dtype=np.float32)
    if not m.any():
        m = np.ones_like(m)
    return SemanticSegmentationTarget(int(category), m)


def explain(model: Any, x: np.ndarray, layers: str, target: Any, method: str = "GradCAM") -> np.ndarray:
    """Class activation map of one preprocessed image, for any task (the one Grad-CAM entry).

    Runs ``with Method(model=..., target_layers=[...]) as cam:`` inside
    :func:`medviz.models.runtime.using` with ``grad=True``: the model's lock is held, gradients reach
    the input only, and the model's weights, ``.grad``, modes, ``requires_grad`` flags and hooks are
    as before on return (also on errors).

    Args:
        model: a network taking ``(1, C, H, W)``: a classifier (``(1, K)`` logits) or a segmenter
            (``(1, K, H, W)`` logits); left unchanged.
        x: ``(C, H, W)`` float32, e.g. from :func:`medviz.classification.preprocess.prepare_input` or one
            slice of :func:`medviz.segmentation.preprocess.prepare_input`.
        layers: name of the target layer, or comma-joined names (the manifest's ``cam_layer``).
        target: a pytorch-grad-cam target: :func:`classifier_target` (``ClassifierOutputTarget(k)``) or
            :func:`segmentation_target` (``SemanticSegmentationTarget(0, mask)``). EigenCAM ignores it (it
            shows the first principal component of the layer's activations).
        method: a :class:`CamMethod` value.

    Returns:
        ``(H, W)`` float32 map in [0, 1] (all zeros when there is no positive evidence).

    Raises:
        ExplainError: unknown method or layer, a target that is not callable, a class or channel outside
            the model's output, or no map computed.
    """
    import torch

    cls = _cam_class(method)
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 3:
        raise ExplainError(f"expected one (C, H, W) image, not {x.shape}")
    if not callable(target):
        raise ExplainError(f"target must be a pytorch-grad-cam target such as classifier_target(k) or "
                           f"segmentation_target(mask), not {target!r}")
    result = None
    with using(model, grad=True) as m:
        layer_modules = target_layers(m, layers)
        inp = torch.from_numpy(x[None].copy()).to(model_device(m))
        _check_category(m, inp, target)
        inp.requires_grad_(True)
        with cls(model=m, target_layers=layer_modules) as cam:
            result = cam(input_tensor=inp, targets=[target])
    if result is None:
        raise ExplainError(f"{method} failed on layer {layers!r} (no map computed)")
    out = np.nan_to_num(np.asarray(result[0], dtype=np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    return np.clip(out, 0.0, 1.0)


def _check_category(model: Any, inp: Any, target: Any) -> None:
    """ExplainError when the target's class/channel is outside the output (pytorch-grad-cam's ``__exit__``
    would swallow the IndexError and return no map)."""
    import torch

    category = getattr(target, "category", None)
    if not isinstance(category, int):
        return
    with torch.no_grad():
        out = model(inp.detach())
    k = int(out.shape[1]) if out.ndim > 1 else int(out.shape[-1])
    if not 0 <= category < k:
        what = "class" if out.ndim == 2 else "output channel"
        raise ExplainError(f"{what} {category} outside 0..{k - 1}")


def overlay(image: np.ndarray, cam: np.ndarray, opacity: float = 0.5, colormap: str = "jet") -> np.ndarray:
    """Draw a CAM over the (windowed) image.

    Args:
        image: ``(H, W)`` grey or ``(H, W, 3)`` RGB float in [0, 1] (e.g. ``PreparedInput.display``).
        cam: ``(h, w)`` map in [0, 1]; resized (bilinear) to ``(H, W)``.
        opacity: weight of the heat map, 0 (image only) .. 1 (map only).
        colormap: one of :data:`COLORMAPS`.

    Returns:
        ``(H, W, 3)`` uint8 RGB.
    """
    import cv2
    from pytorch_grad_cam.utils.image import show_cam_on_image

    if colormap not in COLORMAPS:
        raise ExplainError(f"Unknown colour map {colormap!r}; choose one of {', '.join(COLORMAPS)}")
    if not 0.0 <= opacity <= 1.0:
        raise ExplainError(f"opacity must be within [0, 1], not {opacity}")
    img = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
    rgb = np.repeat(img[..., None], 3, axis=-1) if img.ndim == 2 else img
    h, w = rgb.shape[:2]
    mask = cv2.resize(np.asarray(cam, dtype=np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    cmap = getattr(cv2, f"COLORMAP_{colormap.upper()}")
    return show_cam_on_image(rgb, np.clip(mask, 0, 1), use_rgb=True, colormap=cmap, image_weight=1.0 - opacity)
