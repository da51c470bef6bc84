"""Grad-CAM family explanations (pytorch-grad-cam) that leave a shared model exactly as found.

Safety rules (the model may be shared by every browser session through ``st.cache_resource``):

* the CAM object is always used as ``with Method(model=..., target_layers=[...]) as cam:`` so its
  hooks are removed even on errors;
* the call holds the model's lock (:func:`medviz.classification.infer.model_lock`), shared with inference;
* gradients flow to the *input* only: every parameter's ``requires_grad`` is switched off for the
  call and restored afterwards, so no ``.grad`` is written into the weights; the model's
  train/eval mode is restored too (pytorch-grad-cam calls ``model.eval()``);
* the target layer is found by name with ``model.get_submodule`` (never ``eval``).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import numpy as np

from medviz.classification.infer import model_lock
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


def explain(model: Any, x: np.ndarray, layer: str, target_class: int, method: str = "GradCAM") -> np.ndarray:
    """Class activation map of one preprocessed image.

    Args:
        model: a classifier ``(1, C, S, S) -> (1, K)`` logits; left unchanged (weights, grads,
            mode, ``requires_grad`` flags, hooks).
        x: ``(C, S, S)`` float32, as from :func:`medviz.classification.preprocess.prepare_input`.
        layer: name of the target layer, or comma-joined names (the manifest's ``cam_layer``).
        target_class: class index to explain (EigenCAM ignores it: it shows the first principal
            component of the layer's activations).
        method: a :class:`CamMethod` value.

    Returns:
        ``(S, S)`` float32 map in [0, 1] (all zeros when there is no positive evidence).
    """
    import torch
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cls = _cam_class(method)
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 3:
        raise ExplainError(f"expected one (C, S, S) image, not {x.shape}")
    with model_lock(model):
        params = list(model.parameters())
        device = params[0].device if params else torch.device("cpu")
        flags = [p.requires_grad for p in params]
        was_training = model.training
        layer_modules = target_layers(model, layer)
        result = None
        try:
            for p in params:
                p.requires_grad_(False)
            inp = torch.from_numpy(x[None].copy()).to(device)
            k = _n_classes(model, inp)
            if not 0 <= int(target_class) < k:
                raise ExplainError(f"class {target_class} outside 0..{k - 1}")
            inp.requires_grad_(True)
            with torch.enable_grad():
                with cls(model=model, target_layers=layer_modules) as cam:
                    result = cam(input_tensor=inp, targets=[ClassifierOutputTarget(int(target_class))])
        finally:
            for p, f in zip(params, flags):
                p.requires_grad_(f)
            model.train(was_training)
    if result is None:
        raise ExplainError(f"{method} failed on layer {layer!r} (no map computed)")
    out = np.nan_to_num(np.asarray(result[0], dtype=np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    return np.clip(out, 0.0, 1.0)


def _n_classes(model: Any, inp: Any) -> int:
    import torch

    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            return int(model(inp.detach()).shape[-1])
    finally:
        model.train(was_training)


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
