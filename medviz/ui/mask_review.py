"""Correcting a segmentation by hand in the WebGL viewer: the first step of a review loop.

The model's mask is loaded as the viewer's drawing; brush, eraser and undo run in the browser, and "Apply
correction" sends the drawing back (NIfTI on the study's grid). The corrected mask then becomes the page's result
for measurements and every export; the model's own mask is kept beside it, with the Dice between the two and the
voxels added and removed. Everything lives in the page's per-model result store, so it is never shown under
another model's name or for another study.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import streamlit as st

from medviz.io.nifti_write import array_on_grid
from medviz.segmentation.measure import dice_score
from medviz.types import Volume
from medviz.ui.volume_viewer import volume_viewer

CORRECTED = "corrected"


def active_mask(store: dict[str, Any], model_mask: np.ndarray) -> np.ndarray:
    """The mask the page measures and exports: the hand-corrected one when there is one, else the model's."""
    corrected = store.get(CORRECTED)
    return corrected if corrected is not None and corrected.shape == model_mask.shape else model_mask


def correction_summary(model_mask: np.ndarray, corrected: np.ndarray) -> dict[str, float]:
    """Dice between the model's and the corrected mask, and the voxels the correction added and removed."""
    m, c = model_mask > 0, corrected > 0
    return {"dice": dice_score(m, c), "added": int((c & ~m).sum()), "removed": int((m & ~c).sum())}


def panel(volume: Volume, store: dict[str, Any], model_mask: np.ndarray, token: str, *, opacity: float = 0.5,
          style: str = "fill", rgb: tuple[int, int, int] = (255, 64, 64)) -> None:
    """The viewer with the model's mask (or its correction) as an editable drawing in the page's overlay style
    (``opacity``, ``"fill"``/``"contour"``, colour ``rgb``), and the correction summary."""
    corrected = store.get(CORRECTED)
    shown = active_mask(store, model_mask)
    version = str(store.get("correction_version", 0))
    result = volume_viewer(volume, token, layout="axial", drawing=shown, drawing_version=version,
                           overlay_opacity=opacity, drawing_style=style, drawing_rgb=rgb,
                           key=f"seg.review.{token}.{store.get('model', '')}")
    digest = hashlib.sha256(result).hexdigest() if isinstance(result, bytes) else None
    if digest is not None and digest != store.get("applied"):  # the component keeps its last value: apply once
        store["applied"] = digest
        try:
            store[CORRECTED] = array_on_grid(volume, result).astype(np.uint8)
        except ValueError as e:
            st.error(f"The corrected mask could not be used: {e}.")
        else:
            store["correction_version"] = int(version) + 1  # the browser reloads the drawing it was sent back
            st.rerun()
    if corrected is None:
        st.caption("Choose Brush or Eraser in the viewer's tool menu, paint, then Apply correction. The model's "
                   "output stays as it is until you do.")
        return
    s = correction_summary(model_mask, corrected)
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Dice, model vs corrected", f"{s['dice']:.3f}")
    c2.metric("voxels added", f"{s['added']:,}")
    c3.metric("voxels removed", f"{s['removed']:,}")
    if c4.button("Revert to the model's mask", key=f"seg.review.revert.{token}"):
        store.pop(CORRECTED, None)
        store["correction_version"] = int(version) + 1
        st.rerun()
    st.caption("Measurements and every export below use the corrected mask.")
