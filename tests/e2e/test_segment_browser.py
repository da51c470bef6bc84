"""Real browser: segment a shared LGG test patient on the Segment page and download the NIfTI mask."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.data]


def test_segment_lgg_example_and_download_nifti(segmented_lgg_page, data_dir, streamlit_idle, shots, tmp_path):
    import nibabel as nib
    from playwright.sync_api import expect

    page = segmented_lgg_page
    expect(page.locator(".js-plotly-plot").first).to_be_visible(timeout=180_000)
    expect(page.get_by_role("heading", name="Measurements")).to_be_visible()
    shots.save(page, "segment-overlay")
    page.get_by_role("tab", name="Export").click()
    with page.expect_download() as info:
        page.get_by_role("button", name="NIfTI mask").click()
    path = tmp_path / "mask.nii.gz"
    info.value.save_as(str(path))
    img = nib.Nifti1Image.from_bytes(gzip.decompress(path.read_bytes()))
    arr = np.asarray(img.dataobj)
    assert arr.shape[:2] == (256, 256) and arr.shape[2] > 1
    assert set(np.unique(arr)) <= {0, 1} and arr.any()
