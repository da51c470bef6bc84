"""Measurements on a displayed plane: distance, rectangular ROI statistics, histograms.

Points are display pixel coordinates ``(row, col)`` of a :class:`~medviz.imaging.slicing.PlaneSlice`
image (row 0 at the top); pixel sizes are ``(row_mm, col_mm)``. Nothing here modifies its input.

Example:
    >>> distance_mm((0, 0), (3, 4), row_mm=1.0, col_mm=1.0)
    5.0
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Point = tuple[float, float]

# ITU-R BT.601 luma weights, used to measure RGB images.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def distance_mm(p0: Point, p1: Point, row_mm: float, col_mm: float) -> float:
    """Euclidean in-plane distance between two display points.

    Args:
        p0, p1: ``(row, col)`` display coordinates (fractions allowed).
        row_mm, col_mm: pixel height and width in mm.

    Returns:
        Distance in mm.
    """
    d_row = (float(p1[0]) - float(p0[0])) * row_mm
    d_col = (float(p1[1]) - float(p0[1])) * col_mm
    return float(np.hypot(d_row, d_col))


def to_scalar(image: np.ndarray) -> np.ndarray:
    """Scalar values of an image: BT.601 luma for RGB (uint8 ``(..., 3)``), else unchanged."""
    if image.dtype == np.uint8 and image.ndim >= 3 and image.shape[-1] == 3:
        return image.astype(np.float32) @ _LUMA
    return image


@dataclass(frozen=True)
class Roi:
    """Inclusive pixel rectangle ``rows r0..r1``, ``cols c0..c1`` (``r0 <= r1``, ``c0 <= c1``)."""

    r0: int
    c0: int
    r1: int
    c1: int

    @classmethod
    def from_corners(cls, a: Point, b: Point, shape: tuple[int, int]) -> Roi:
        """Rectangle spanning two corner points (any order), rounded and clipped to ``shape``.

        Raises:
            ValueError: the rectangle lies entirely outside the image.
        """
        rows, cols = shape
        r0, r1 = sorted((int(round(a[0])), int(round(b[0]))))
        c0, c1 = sorted((int(round(a[1])), int(round(b[1]))))
        if r1 < 0 or c1 < 0 or r0 >= rows or c0 >= cols:
            raise ValueError(f"ROI rows {r0}..{r1}, cols {c0}..{c1} lies outside the {rows}x{cols} image")
        return cls(max(r0, 0), max(c0, 0), min(r1, rows - 1), min(c1, cols - 1))

    @property
    def n_pixels(self) -> int:
        return (self.r1 - self.r0 + 1) * (self.c1 - self.c0 + 1)


@dataclass(frozen=True)
class RoiStats:
    """Statistics of the finite pixel values inside a ROI (in the image's units).

    ``mean``/``std``/``min``/``max`` are NaN when no pixel is finite. ``std`` is the population
    standard deviation (ddof 0). ``area_mm2`` covers all ``n_pixels`` pixels of the rectangle.
    """

    mean: float
    std: float
    min: float
    max: float
    area_mm2: float
    n_pixels: int
    n_finite: int


def roi_stats(image: np.ndarray, roi: Roi, row_mm: float, col_mm: float) -> RoiStats:
    """Statistics of a rectangular ROI.

    Args:
        image: ``(rows, cols)`` scalar or ``(rows, cols, 3)`` RGB (measured as luma).
        roi: rectangle inside the image (see :meth:`Roi.from_corners`).
        row_mm, col_mm: pixel size in mm.

    Returns:
        :class:`RoiStats`.
    """
    patch = to_scalar(image[roi.r0 : roi.r1 + 1, roi.c0 : roi.c1 + 1])
    values = np.asarray(patch, dtype=np.float64)
    values = values[np.isfinite(values)]
    area = roi.n_pixels * float(row_mm) * float(col_mm)
    if values.size == 0:
        nan = float("nan")
        return RoiStats(nan, nan, nan, nan, area, roi.n_pixels, 0)
    return RoiStats(
        mean=float(values.mean()),
        std=float(values.std()),
        min=float(values.min()),
        max=float(values.max()),
        area_mm2=area,
        n_pixels=roi.n_pixels,
        n_finite=int(values.size),
    )


@dataclass(frozen=True)
class Histogram:
    """``counts[i]`` values fall in ``[edges[i], edges[i + 1])`` (last bin closed)."""

    counts: np.ndarray
    edges: np.ndarray

    @property
    def centers(self) -> np.ndarray:
        return (self.edges[:-1] + self.edges[1:]) / 2


def histogram(
    values: np.ndarray, bins: int = 128, value_range: tuple[float, float] | None = None
) -> Histogram:
    """Histogram of the finite values (NaN and +-Inf ignored; RGB measured as luma).

    Args:
        values: array of any shape; ``(..., 3)`` uint8 is treated as RGB.
        bins: number of bins.
        value_range: ``(low, high)``; default the finite min..max.

    Returns:
        :class:`Histogram`; all-zero counts over ``[0, 1]`` when nothing is finite.
    """
    arr = to_scalar(np.asarray(values))
    flat = arr.reshape(-1)
    flat = flat[np.isfinite(flat)]
    if flat.size == 0:
        return Histogram(np.zeros(bins, dtype=np.int64), np.linspace(0.0, 1.0, bins + 1))
    if value_range is None:
        low, high = float(flat.min()), float(flat.max())
        value_range = (low, high) if high > low else (low - 0.5, low + 0.5)
    counts, edges = np.histogram(flat, bins=bins, range=value_range)
    return Histogram(counts, edges)
