"""Streamlit side of the Viewer page: the displayed plane and its figure with measurements."""

from __future__ import annotations

from typing import Any

from medviz.constants import Plane, WindowPreset
from medviz.imaging.measure import Point, Roi, RoiStats, roi_stats
from medviz.imaging.slicing import PlaneSlice, extract_plane
from medviz.imaging.viz import slice_figure
from medviz.types import Volume


def plane_slice(volume: Volume, plane: Plane, index: int) -> PlaneSlice:
    """The plane shown (``index`` 0-based), with its geometry for the probe and the measurement tools."""
    return extract_plane(volume, plane, index)


def figure_panel(volume: Volume, ps: PlaneSlice, window: WindowPreset | None, distance: tuple[Point, Point] | None,
                 roi: Roi | None, token: str) -> tuple[Any, RoiStats | None]:
    """``(figure, ROI statistics or None)``: the slice on physical axes with orientation labels, the distance
    line and the ROI; zoom and pan are kept while the user browses slices and windows of this study."""
    stats = roi_stats(ps.image, roi, ps.row_mm, ps.col_mm) if roi is not None else None
    figure = slice_figure(ps, window=window, units=volume.units, spacing_known=volume.spacing_known,
                          distance=distance, roi=roi, roi_stats=stats, uirevision=f"{token}.{ps.plane.value}",
                          selectable=True)  # a box drawn with the box-select tool becomes the ROI
    return figure, stats
