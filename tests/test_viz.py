"""Tests for medviz.imaging.viz: physical axes, orientation, probe, overlays, degenerate slices."""

from __future__ import annotations

import json

import numpy as np
import plotly.graph_objects as go
import pytest

from medviz.constants import CT_PRESETS, Plane, WindowPreset
from medviz.imaging.measure import Roi, histogram, roi_stats
from medviz.imaging.slicing import extract_plane
from medviz.imaging.viz import histogram_figure, slice_figure
from medviz.types import Volume, affine_from_spacing

SOFT = CT_PRESETS["Soft tissue"]
CUBE = (7, 4, 25)  # (z, y, x)


def ct_volume() -> Volume:
    affine = np.diag([0.5, 2.0, 3.0, 1.0])
    affine[:3, 3] = (-100.0, 50.0, 700.0)
    array = np.full((10, 20, 30), -1000.0, np.float32)
    array[CUBE] = 1000.0
    return Volume(array=array, spacing=(3.0, 2.0, 0.5), affine=affine, modality="CT", units="HU", orientation="LPS")


def plotted_max(fig: go.Figure) -> tuple[float, float]:
    """Plot (x, y) of the brightest pixel of the image trace."""
    tr = fig.data[0]
    z = np.asarray(tr.z)
    r, c = np.unravel_index(int(np.argmax(z)), z.shape[:2])
    return tr.x0 + tr.dx * c, tr.y0 + tr.dy * r


def annotations(fig: go.Figure) -> dict[str, str]:
    return {a.name: a.text for a in fig.layout.annotations}


@pytest.mark.parametrize(
    ("plane", "index", "xy", "y_reversed", "labels"),
    [
        (Plane.AXIAL, 7, (-100 + 25 * 0.5, 50 + 4 * 2.0), True, "APRL"),
        (Plane.CORONAL, 4, (-100 + 25 * 0.5, 700 + 7 * 3.0), False, "SIRL"),
        (Plane.SAGITTAL, 25, (50 + 4 * 2.0, 700 + 7 * 3.0), False, "SIAP"),
    ],
)
def test_cube_plotted_at_its_lps_position(plane, index, xy, y_reversed, labels):
    fig = slice_figure(extract_plane(ct_volume(), plane, index), window=SOFT, units="HU")
    assert isinstance(fig.data[0], go.Heatmap)
    assert plotted_max(fig) == pytest.approx(xy)
    assert (fig.layout.yaxis.autorange == "reversed") is y_reversed
    assert fig.layout.xaxis.autorange is True  # patient right on the image left
    assert fig.layout.yaxis.scaleanchor == "x" and fig.layout.yaxis.scaleratio == 1  # mm both ways
    notes = annotations(fig)
    got = "".join(notes[f"orientation-{e}"].strip("<b>/") for e in ("top", "bottom", "left", "right"))
    assert got == labels


def test_hover_probe_shows_raw_hu_and_lps_and_window_is_zmin_zmax():
    fig = slice_figure(extract_plane(ct_volume(), Plane.AXIAL, 7), window=SOFT, units="HU")
    tr = fig.data[0]
    assert (tr.zmin, tr.zmax) == (SOFT.low, SOFT.high)
    assert np.asarray(tr.z).dtype == np.int16 and np.asarray(tr.z).max() == 1000  # raw HU, not grey levels
    assert "HU" in tr.hovertemplate and "LPS %{x:.1f}, %{y:.1f}, 721.0 mm" in tr.hovertemplate
    assert np.asarray(tr.customdata)[4, 25].tolist() == [4, 25]  # row, col probe
    assert "W 400  L 40" in annotations(fig)["corner"]


def test_distance_and_roi_overlays():
    vol = ct_volume()
    ps = extract_plane(vol, Plane.AXIAL, 7)  # pixels 2.0 x 0.5 mm
    roi = Roi(2, 20, 6, 28)
    stats = roi_stats(ps.image, roi, ps.row_mm, ps.col_mm)
    fig = slice_figure(ps, window=SOFT, units="HU", distance=((0, 0), (2, 12)), roi=roi, roi_stats=stats)
    notes = annotations(fig)
    assert notes["distance-label"] == "7.2 mm"  # hypot(4 mm, 6 mm)
    line = fig.data[1]
    assert list(line.x) == [-100.0, -94.0] and list(line.y) == [50.0, 54.0]
    rect = fig.layout.shapes[0]
    assert (rect.x0, rect.x1, rect.y0, rect.y1) == (-100 + 19.5 * 0.5, -100 + 28.5 * 0.5, 50 + 1.5 * 2, 50 + 6.5 * 2)
    assert "HU" in notes["roi-label"] and "mm²" in notes["roi-label"]


@pytest.mark.parametrize("fill", [0.0, np.nan])
def test_blank_slice_renders(fill):
    vol = Volume(array=np.full((1, 16, 16), fill, np.float32), spacing=(1, 1, 1), affine=np.eye(4))
    fig = slice_figure(extract_plane(vol, Plane.AXIAL, 0), window=WindowPreset("w", 1, 0.5), units="a.u.")
    payload = json.loads(fig.to_json())
    assert payload["data"][0]["type"] == "heatmap"
    assert "orientation-top" not in annotations(fig)  # no geometry, no labels


def test_unknown_spacing_uses_pixel_axes_and_rgb_uses_image_trace():
    rgb = Volume(
        array=np.zeros((1, 6, 8, 3), np.uint8), spacing=(1, 1, 1), affine=affine_from_spacing((1, 1, 1)),
        units="RGB", spacing_known=False,
    )  # fmt: skip
    fig = slice_figure(extract_plane(rgb, Plane.AXIAL, 0), window=None, units="RGB", spacing_known=False)
    assert isinstance(fig.data[0], go.Image)
    assert fig.layout.xaxis.title.text == "columns (px)"
    assert fig.layout.yaxis.autorange == "reversed"


def test_large_slice_is_decimated_but_probe_keeps_original_indices():
    vol = Volume(array=np.zeros((1, 2500, 2000), np.float32), spacing=(1, 0.2, 0.2), affine=np.eye(4))
    fig = slice_figure(extract_plane(vol, Plane.AXIAL, 0), window=None, units="a.u.", max_display_px=1024)
    z = np.asarray(fig.data[0].z)
    assert max(z.shape) <= 1024
    assert np.asarray(fig.data[0].customdata)[1, 1].tolist() == [3, 3]
    assert "display 1:3" in annotations(fig)["corner"]


def test_oblique_probe_carries_lps_in_customdata():
    vol = ct_volume()
    theta = np.deg2rad(15)
    affine = vol.affine.copy()
    affine[:3, :3] = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]]) @ affine[:3, :3]
    oblique = Volume(array=vol.array, spacing=vol.spacing, affine=affine, units="HU", orientation="LPS")
    ps = extract_plane(oblique, Plane.AXIAL, 7)
    fig = slice_figure(ps, window=SOFT, units="HU")
    custom = np.asarray(fig.data[0].customdata)
    assert custom.shape == (20, 30, 5)
    np.testing.assert_allclose(custom[4, 25, 2:], ps.to_lps(4, 25), rtol=1e-5)
    assert "customdata[2]" in fig.data[0].hovertemplate


def test_histogram_figure_marks_window():
    hist = histogram(np.linspace(-1000, 1000, 500), bins=50)
    fig = histogram_figure(hist, window=SOFT, units="HU")
    assert isinstance(fig.data[0], go.Bar) and sum(fig.data[0].y) == 500
    assert {s.type for s in fig.layout.shapes} == {"rect", "line"}
    assert fig.layout.shapes[0].x0 == SOFT.low and fig.layout.shapes[0].x1 == SOFT.high


def _nonneg_traces() -> dict[str, go.Heatmap]:
    """The heat-map trace of every figure that draws a non-negative map, built from tiny synthetic maps."""
    from medviz.classification.viz import confusion_figure
    from medviz.reconstruction.viz import comparison_figure
    from medviz.segmentation.viz import map_figure

    vol = ct_volume()
    values = np.zeros(vol.shape, np.float32)
    values[CUBE] = 0.7
    img = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    recon = comparison_figure({"reference": img, "model": img * 0.9}, difference=np.abs(img - img * 0.9))
    return {
        "uncertainty": map_figure(vol, values, Plane.AXIAL, CUBE[0], "uncertainty").data[0],
        "Grad-CAM": map_figure(vol, values, Plane.AXIAL, CUBE[0], "Grad-CAM").data[0],
        "|difference|": recon.data[-1],
        "confusion": confusion_figure(np.array([[5, 0], [1, 7]]), ["a", "b"]).data[0],
    }


@pytest.mark.parametrize("name", ["uncertainty", "Grad-CAM", "|difference|", "confusion"])
def test_every_nonnegative_map_starts_at_the_neutral_colour_with_a_labelled_colour_bar(name):
    from medviz.imaging.viz import NEUTRAL_ZERO, NONNEG_COLORSCALE

    trace = _nonneg_traces()[name]
    stops = [tuple(stop) for stop in trace.colorscale]
    assert stops[0] == (0.0, NEUTRAL_ZERO), f"{name}: zero is drawn {stops[0][1]}, not the neutral colour"
    assert stops == [tuple(s) for s in NONNEG_COLORSCALE]  # one shared scale for every map
    assert trace.zmin == 0 and trace.zmax > 0 and trace.showscale
    title = trace.colorbar.title.text
    assert "(" in title and ")" in title, f"{name}: the colour bar names no units ({title!r})"


def test_colour_images_travel_as_png_not_as_pixel_json():
    """The static rendering of colour images (fused overlays, photos, CAM overlays) sends one PNG."""
    import json

    from medviz.classification.viz import image_figure

    rgb = np.random.default_rng(0).integers(0, 255, (1, 200, 300, 3), dtype=np.uint8)
    vol = Volume(array=rgb, spacing=(1, 1, 1), affine=affine_from_spacing((1, 1, 1)), units="RGB")
    for fig in (slice_figure(extract_plane(vol, Plane.AXIAL, 0), window=None, units="RGB"), image_figure(rgb[0])):
        trace = fig.data[0]
        assert trace.source.startswith("data:image/png;base64,") and trace.z is None
        assert len(json.dumps(fig.to_plotly_json()["data"])) < 0.5 * len(json.dumps(rgb[0].tolist()))
