"""Overlays and figures for segmentations (no Streamlit).

Alignment by construction: a mask (or confusion map, or probability map) on the volume grid is
wrapped in a Volume with the *same* geometry and cut with :func:`medviz.imaging.slicing.extract_plane`,
exactly like the image, so mask pixel ``(row, col)`` lies on image pixel ``(row, col)`` in every
plane. The windowed image and the coloured mask are fused into one RGB slice, which
:func:`medviz.imaging.viz.slice_figure` draws on the Viewer's physical axes with its orientation labels.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import plotly.graph_objects as go

from medviz.constants import Plane, WindowPreset
from medviz.imaging.overlay import LABEL_COLORS, as_volume
from medviz.imaging.slicing import PlaneSlice, extract_plane
from medviz.imaging.viz import nonneg_scale, slice_figure
from medviz.types import Volume

CONFUSION_COLORS: dict[int, tuple[int, int, int]] = {1: (0, 220, 0), 2: (255, 40, 40), 3: (40, 120, 255)}


def fused_figure(ps: PlaneSlice, rgb: np.ndarray, spacing_known: bool, height: int = 560) -> go.Figure:
    """An already fused overlay ``(rows, cols, 3)`` uint8 of the plane ``ps``, drawn on the Viewer's axes."""
    return slice_figure(dataclasses.replace(ps, image=rgb), window=None, units="RGB", spacing_known=spacing_known,
                        height=height)


#: Units of the maps drawn by :func:`map_figure`, shown on their colour bars.
MAP_UNITS = {"uncertainty": "2 × SD of 4 flips, 0-1", "Grad-CAM": "relative, 0-1"}


def map_figure(volume: Volume, values: np.ndarray, plane: Plane | str, index: int, title: str,
               height: int = 400, units: str | None = None) -> go.Figure:
    """A non-negative scalar map (uncertainty, Grad-CAM) in [0, 1] on the volume grid, drawn for one plane with the
    shared colour scale of non-negative maps (:func:`medviz.imaging.viz.nonneg_scale`: zero is neutral black) and a
    colour bar in the map's ``units`` (default :data:`MAP_UNITS` of ``title``)."""
    ps = extract_plane(as_volume(volume, np.asarray(values, dtype=np.float32)), plane, index)
    fig = slice_figure(ps, window=WindowPreset(title, 1.0, 0.5), units="", spacing_known=volume.spacing_known,
                       height=height)
    fig.data[0].update(**nonneg_scale(1.0, title, MAP_UNITS.get(title, "") if units is None else units))
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
