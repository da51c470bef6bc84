"""AppTest of pages/reconstruct.py with tiny registered models and a synthetic study in the session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from medviz.types import Volume, affine_from_spacing

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "reconstruct.py")


def _study(phantom: np.ndarray) -> Volume:
    arr = np.stack([phantom * 0.5, phantom, phantom * 0.8]).astype(np.float32) * 1000
    return Volume(arr, (1.0, 1.0, 1.0), affine_from_spacing((1.0, 1.0, 1.0)), modality="MR", name="phantom")


def test_page_without_study_or_models_explains(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVIZ_WEIGHTS_DIR", str(tmp_path / "none"))
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert any("No reconstruction" in i.value for i in at.info)


def test_page_reconstructs_current_study_and_denoises(tiny_weights, phantom):
    from medviz.ui.state import VOLUME_KEY

    at = AppTest.from_file(PAGE, default_timeout=90)
    at.session_state[VOLUME_KEY] = _study(phantom)
    at.run()
    at.selectbox(key="recon.model").set_value("tiny_recon").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("simulated" in w.value for w in at.warning)
    assert any("out of distribution" in w.value for w in at.warning)  # 64x64, not the 256x256 training size
    charts = at.get("plotly_chart")
    assert len(charts) >= 3  # panels, baselines/bars, mask
    table = at.dataframe[0].value
    assert {"model", "zero_filled", "cs_tv"} <= set(table["method"])

    at.selectbox(key="recon.model").set_value("tiny_denoise").run()
    assert not at.exception and not at.error
    assert {"model", "noisy", "nlm", "bm3d"} <= set(at.dataframe[0].value["method"])


def test_page_asks_for_a_study_when_none_is_open(tiny_weights):
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert any("Open a study" in i.value for i in at.info)


def test_the_colour_channel_is_for_rgb_studies_only():
    import numpy as np

    from medviz.types import MedvizError, Volume, affine_from_spacing
    from medviz.ui.reconstruction import volume_slice

    geo = dict(spacing=(1.0, 1.0, 1.0), affine=affine_from_spacing((1.0, 1.0, 1.0)))
    grey = Volume(array=np.arange(2 * 4 * 4, dtype=np.float32).reshape(2, 4, 4), **geo)
    rgb = Volume(array=np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3), units="RGB", **geo)
    np.testing.assert_array_equal(volume_slice(grey, 1), grey.array[1])
    np.testing.assert_array_equal(volume_slice(rgb, 0, 1), rgb.array[0, ..., 1])
    with pytest.raises(MedvizError, match="no colour channel"):
        volume_slice(grey, 0, 1)  # a channel given for a grey study was silently ignored before
    with pytest.raises(MedvizError, match="colour channel 0..2"):
        volume_slice(rgb, 0)
