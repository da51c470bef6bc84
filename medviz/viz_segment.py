"""Overlays and figures for segmentations (no Streamlit).

Alignment by construction: a mask (or confusion map, or probability map) on the volume grid is
wrapped in a Volume with the *same* geometry and cut with :func:`medviz.slicing.extract_plane`,
exactly like the image, so mask pixel ``(row, col)`` lies on image pixel ``(row, col)`` in every
plane. The windowed image and the coloured mask are fused into one RGB slice, which
:func:`medviz.viz.slice_figure` draws on the Viewer's physical axes with its orientation labels.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import plotly.graph_objects as go

from medviz.constants import Plane, WindowPreset
from medviz.slicing import PlaneSlice, extract_plane
from medviz.types import Volume

# label -> RGB. 1 = prediction (orange); confusion colours: TP green, FP red, FN blue.
LABEL_COLORS: dict[int, tuple[int, int, int]] = {1: (255, 140, 0), 2: (0, 200, 255), 3: (200, 0, 255),
                                                   4: (255, 255, 0), 5: (0, 255, 120)}
CONFUSION_COLORS: dict[int, tuple[int, int, int]] = {1: (0, 220, 0), 2: (255, 40, 40), 3: (40, 120, 255)}
CONFUSION_NAMES = {1: "true positive", 2: "false positive", 3: "false negative"}


def as_volume(volume: Volume, array: np.ndarray) -> Volume:
    """``array`` (``(Z, Y, X)``, any dtype) wrapped with ``volume``'s geometry (for slicing)."""
    a = np.asarray(array)
    if a.shape != volume.shape:
        raise ValueError(f"overlay shape {a.shape} differs from the volume shape {volume.shape}")
    return Volume(array=a, spacing=volume.spacing, affine=volume.affine, modality=volume.modality,
                  units="label", orientation=volume.orientation, spacing_known=volume.spacing_known)


def windowed_rgb(ps: PlaneSlice, window: WindowPreset | None) -> np.ndarray:
    """The displayed slice as ``(rows, cols, 3)`` uint8 (grey data windowed; RGB data as is)."""
    from medviz.transforms import auto_window, window_to_uint8

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


def overlay_figure(volume: Volume, labels: np.ndarray, plane: Plane | str, index: int,
                   window: WindowPreset | None, colors: dict[int, tuple[int, int, int]] | None = None,
                   opacity: float = 0.4, mode: str = "fill", height: int = 560) -> go.Figure:
    """The overlay drawn by the Viewer's :func:`medviz.viz.slice_figure` (same axes and labels)."""
    from medviz.viz import slice_figure

    ps, rgb = overlay_slice(volume, labels, plane, index, window, colors, opacity, mode)
    return slice_figure(dataclasses.replace(ps, image=rgb), window=None, units="RGB",
                        spacing_known=volume.spacing_known, height=height)


def map_figure(volume: Volume, values: np.ndarray, plane: Plane | str, index: int, title: str,
               height: int = 400) -> go.Figure:
    """A scalar map (uncertainty, Grad-CAM) in [0, 1] on the volume grid, drawn for one plane."""
    from medviz.viz import slice_figure

    ps = extract_plane(as_volume(volume, np.asarray(values, dtype=np.float32)), plane, index)
    fig = slice_figure(ps, window=WindowPreset(title, 1.0, 0.5), units="", spacing_known=volume.spacing_known,
                       height=height)
    fig.data[0].update(colorscale="Inferno", showscale=True, colorbar=dict(title=title))
    return fig


def surface_figure(labels: np.ndarray, spacing: tuple[float, float, float], max_faces: int = 200_000,
                   colors: dict[int, tuple[int, int, int]] | None = None) -> go.Figure:
    """3D surface of each label (``skimage.measure.marching_cubes`` with the voxel spacing, mm).

    Coordinates are array-index based ``(x, y, z) * spacing``; large meshes are decimated by
    stepping the marching cubes (``step_size``) until they have at most ``max_faces`` faces.
    """
    from skimage.measure import marching_cubes

    fig = go.Figure()
    lab = np.asarray(labels)
    for value in (int(v) for v in np.unique(lab) if v != 0):
        m = np.pad(lab == value, 1).astype(np.float32)
        if min(m.shape) < 2 or m.sum() == 0:
            continue
        step = 1
        while True:
            verts, faces, _, _ = marching_cubes(m, level=0.5, spacing=tuple(float(s) for s in spacing), step_size=step)
            if len(faces) <= max_faces or step >= 8:
                break
            step += 1
        verts = verts - np.asarray(spacing, dtype=float)  # undo the one-voxel padding
        z, y, x = verts[:, 0], verts[:, 1], verts[:, 2]
        rgb = (colors or LABEL_COLORS).get(value, (255, 140, 0))
        fig.add_trace(go.Mesh3d(x=x, y=y, z=z, i=faces[:, 0], j=faces[:, 1], k=faces[:, 2], opacity=0.6,
                                color=f"rgb{tuple(rgb)}", name=f"label {value}", flatshading=True))
    fig.update_layout(template="plotly_dark", height=480, margin=dict(l=0, r=0, t=0, b=0),
                      scene=dict(aspectmode="data", xaxis_title="x (mm)", yaxis_title="y (mm)",
                                 zaxis_title="z (mm)"))
    return fig
