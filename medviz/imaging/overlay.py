"""Fusing label maps and contours into a displayed slice (no Streamlit, no task knowledge).

Alignment by construction: a mask on the volume grid is wrapped in a Volume with the *same* geometry
(:func:`as_volume`) and cut with :func:`medviz.imaging.slicing.extract_plane`, exactly like the image,
so mask pixel ``(row, col)`` lies on image pixel ``(row, col)`` in every plane."""

from __future__ import annotations

import numpy as np

from medviz.constants import Plane, WindowPreset
from medviz.imaging.slicing import PlaneSlice, extract_plane
from medviz.imaging.windowing import auto_window, window_to_uint8
from medviz.types import Volume

# label -> RGB. 1 = prediction (orange); confusion colours: TP green, FP red, FN blue.
LABEL_COLORS: dict[int, tuple[int, int, int]] = {1: (255, 140, 0), 2: (0, 200, 255), 3: (200, 0, 255),
                                                   4: (255, 255, 0), 5: (0, 255, 120)}


def as_volume(volume: Volume, array: np.ndarray) -> Volume:
    """``array`` (``(Z, Y, X)``, any dtype) wrapped with ``volume``'s geometry (for slicing)."""
    a = np.asarray(array)
    if a.shape != volume.shape:
        raise ValueError(f"overlay shape {a.shape} differs from the volume shape {volume.shape}")
    return Volume(array=a, spacing=volume.spacing, affine=volume.affine, modality=volume.modality,
                  units="label", orientation=volume.orientation, spacing_known=volume.spacing_known)


def windowed_rgb(ps: PlaneSlice, window: WindowPreset | None) -> np.ndarray:
    """The displayed slice as ``(rows, cols, 3)`` uint8 (grey data windowed; RGB data as is)."""
    img = ps.image
    if img.ndim == 3:
        return np.ascontiguousarray(img, dtype=np.uint8)
    w = window if window is not None else auto_window(img, (0.0, 100.0))
    return np.repeat(window_to_uint8(np.asarray(img, dtype=np.float32), w)[..., None], 3, axis=-1)


def contour(mask2d: np.ndarray) -> np.ndarray:
    """Inner boundary pixels of each label (a label pixel with a 4-neighbour of another value)."""
    from skimage.segmentation import find_boundaries

    return find_boundaries(mask2d, mode="inner") & (mask2d > 0)


def fuse_overlay(base: np.ndarray, labels2d: np.ndarray, colors: dict[int, tuple[int, int, int]],
                 opacity: float = 0.4, mode: str = "fill") -> np.ndarray:
    """Blend label colours into an RGB slice.

    Args:
        base: ``(rows, cols, 3)`` uint8.
        labels2d: ``(rows, cols)`` integer labels (0 = none).
        opacity: 0..1 for ``"fill"``; contours are drawn opaque.
        mode: ``"fill"`` or ``"contour"``.

    Returns:
        ``(rows, cols, 3)`` uint8 (a new array; ``base`` is not modified).
    """
    if mode not in ("fill", "contour"):
        raise ValueError(f"overlay mode must be 'fill' or 'contour', not {mode!r}")
    out = base.astype(np.float32)
    lab = np.asarray(labels2d)
    edge = contour(lab) if mode == "contour" else None
    for value, rgb in colors.items():
        sel = lab == value
        if edge is not None:
            sel &= edge
        a = 1.0 if mode == "contour" else float(np.clip(opacity, 0.0, 1.0))
        out[sel] = (1 - a) * out[sel] + a * np.asarray(rgb, dtype=np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def overlay_slice(volume: Volume, labels: np.ndarray, plane: Plane | str, index: int,
                  window: WindowPreset | None, colors: dict[int, tuple[int, int, int]] | None = None,
                  opacity: float = 0.4, mode: str = "fill") -> tuple[PlaneSlice, np.ndarray]:
    """The fused overlay of one plane: ``(PlaneSlice of the image, (rows, cols, 3) uint8)``."""
    ps = extract_plane(volume, plane, index)
    lab = extract_plane(as_volume(volume, labels), plane, index).image
    return ps, fuse_overlay(windowed_rgb(ps, window), lab, colors or LABEL_COLORS, opacity, mode)
