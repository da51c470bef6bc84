"""AppTest of pages/reconstruct.py with tiny registered models and a synthetic study in the session."""

from __future__ import annotations

import json
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
    # themed like the Viewer (Streamlit's theme repainted the |difference| colour scale: zero bright red)
    assert [c.proto.theme for c in charts] == [""] * len(charts)
    table = at.dataframe[0].value
    assert {"model", "zero_filled"} <= set(table["method"])
    at.button(key="recon.slow").click().run()
    assert {"model", "zero_filled", "cs_tv"} <= set(at.dataframe[0].value["method"])

    at.selectbox(key="recon.model").set_value("tiny_denoise").run()
    assert not at.exception and not at.error
    assert {"model", "noisy", "nlm"} <= set(at.dataframe[0].value["method"])
    titles = [a["text"] for a in json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]["annotations"]]
    assert "model (tiny_denoise)" in titles and not any("tiny_recon" in t for t in titles)  # no stale result
    at.button(key="recon.slow").click().run()
    assert {"model", "noisy", "nlm", "bm3d"} <= set(at.dataframe[0].value["method"])


def test_slow_baseline_only_on_request_and_kept_for_its_slice(tiny_weights, phantom, monkeypatch):
    """CS-TV / BM3D (about 1-3 s a slice) no longer run on every new slice: only when the button asks, and a
    slice's result comes back with the slice without being computed again."""
    from medviz.ui import reconstruction
    from medviz.ui.state import VOLUME_KEY

    real, slow_runs = reconstruction.run_compare, []

    def spy(name, image, **kwargs):
        slow_runs.append(kwargs["slow_baseline"])
        return real(name, image, **kwargs)

    monkeypatch.setattr(reconstruction, "run_compare", spy)
    study = _study(phantom)
    at = AppTest.from_file(PAGE, default_timeout=90)
    at.session_state[VOLUME_KEY] = study
    at.run()
    at.selectbox(key="recon.model").set_value("tiny_recon").run()
    methods = lambda: set(at.dataframe[0].value["method"])  # noqa: E731
    assert "cs_tv" not in methods() and True not in slow_runs  # off by default
    assert not at.button(key="recon.slow").disabled

    at.button(key="recon.slow").click().run()
    assert "cs_tv" in methods() and slow_runs.count(True) == 1
    at.run()
    assert at.button(key="recon.slow").disabled  # this slice has it already

    slider = at.slider(key=reconstruction.slider_key(study))
    slider.set_value(1).run()
    assert not at.exception and "cs_tv" not in methods()  # a new slice: the fast comparison only
    assert not at.button(key="recon.slow").disabled
    slider.set_value(2).run()
    assert "cs_tv" in methods() and slow_runs.count(True) == 1  # back: kept, not computed again


def test_slice_numbers_are_one_based_and_the_caption_follows_the_slider(tiny_weights, phantom):
    import re

    from medviz.ui import reconstruction
    from medviz.ui.state import VOLUME_KEY

    study = _study(phantom)
    at = AppTest.from_file(PAGE, default_timeout=90)
    at.session_state[VOLUME_KEY] = study
    at.run()
    slider = at.slider(key=reconstruction.slider_key(study))
    assert (slider.min, slider.max, slider.value) == (1, 3, 2)
    for number in (1, 3):
        at.slider(key=reconstruction.slider_key(study)).set_value(number).run()
        assert not at.exception
        shown = [int(m.group(1)) for c in at.caption if (m := re.match(r"Slice (\d+) of 3", c.value))]
        assert shown == [number]


def test_page_asks_for_a_study_when_none_is_open(tiny_weights):
    """A new session (e.g. after a browser reload) says why there is no study and opens the example on request."""
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert any("Open a study" in i.value and "reload" in i.value for i in at.info)
    at.button(key="recon.open_example").click().run()
    assert not at.exception and at.session_state["medviz.volume"].name == "anatomical.nii"
    assert at.get("plotly_chart")


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
