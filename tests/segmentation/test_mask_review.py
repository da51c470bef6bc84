"""A mask corrected by hand in the viewer (issue #13 point 4): what the viewer sends back is read on the study's
grid, becomes the page's result, and round-trips through the NIfTI and DICOM SEG exports; the Dice between model
and corrected mask is computed."""

from __future__ import annotations

import numpy as np
import pytest

from medviz.io.nifti_write import array_on_grid, nifti_bytes_of
from medviz.segmentation.export import dicom_seg_bytes, nifti_bytes
from medviz.segmentation.reference import read_reference_mask
from medviz.ui.mask_review import CORRECTED, active_mask, correction_summary


def _model_mask(shape):
    m = np.zeros(shape, np.uint8)
    m[3:7, 100:180, 150:260] = 1
    return m


def _corrected(model):
    c = model.copy()
    c[5, 100:180, 150:200] = 0  # erased a strip
    c[6, 300:320, 40:60] = 1  # painted a lesion the model missed
    return c


def test_the_corrected_mask_replaces_the_models_for_the_page():
    model = _model_mask((8, 400, 400))
    store = {}
    assert active_mask(store, model) is model
    store[CORRECTED] = _corrected(model)
    assert active_mask(store, model) is store[CORRECTED]
    s = correction_summary(model, store[CORRECTED])
    assert s["added"] == 400 and s["removed"] == 80 * 50
    total = model.sum() + store[CORRECTED].sum()
    assert s["dice"] == pytest.approx(2 * (model.sum() - 80 * 50) / total)


@pytest.mark.data
def test_a_hand_corrected_mask_round_trips_through_nifti_and_dicom_seg(data_dir):
    from medviz.io import load_path

    volume = load_path(data_dir / "dicom_series_ct_totalsegmentator").series[0].volume
    corrected = _corrected(_model_mask(volume.shape))
    # what the viewer's "Apply correction" sends: NIfTI on the study's own header
    back = array_on_grid(volume, nifti_bytes_of(volume, corrected))
    np.testing.assert_array_equal(back, corrected)
    from_nifti, _ = read_reference_mask("corrected.nii.gz", nifti_bytes(volume, back), volume)
    np.testing.assert_array_equal(from_nifti > 0, corrected > 0)
    from_seg, _ = read_reference_mask("corrected.dcm", dicom_seg_bytes(volume, back, {1: "corrected"}), volume)
    np.testing.assert_array_equal(from_seg > 0, corrected > 0)
