"""AppTest of the sequence model's probability strip on the Segment page (tiny registered models)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medviz.types import Volume, affine_from_spacing
from tests.strip_app import read_all_slices

TINY_UNET = {"name": "UNet", "kwargs": {"spatial_dims": 2, "in_channels": 3, "out_channels": 1, "channels": [4, 8, 16],
                                        "strides": [2, 2], "num_res_units": 1, "norm": "batch"}}


@pytest.fixture
def tiny_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A weights folder with a tiny segmenter and a tiny sequence model reading its features."""
    import torch

    from medviz.models.nets import build_network
    from medviz.models.registry import sha256_file, upsert_entry
    from medviz.models.weights import save_state_dict

    torch.manual_seed(0)
    seg = tmp_path / "tiny_seg.safetensors"
    save_state_dict(build_network(TINY_UNET), seg)
    upsert_entry({"name": "tiny_seg", "task": "segmentation", "file": seg.name, "sha256": sha256_file(seg),
                  "arch": TINY_UNET, "classes": ["background", "FLAIR abnormality"], "input": {"modality": "MR"},
                  "cam_layer": "model.1.submodule.2"}, tmp_path)
    arch = {"name": "SliceSequenceModel", "kwargs": {"n_features": 2 * 16 + 2, "hidden": 4, "proj": 4, "dropout": 0.0}}
    path = tmp_path / "tiny_seq.safetensors"
    save_state_dict(build_network(arch), path)
    upsert_entry({"name": "tiny_seq", "task": "sequence", "file": path.name, "sha256": sha256_file(path), "arch": arch,
                  "segmenter": "tiny_seg", "lr_flip": False, "position_prior": [0.3] * 10, "per_slice_window": 3,
                  "segmenter_window": 1}, tmp_path)
    monkeypatch.setenv("MEDVIZ_WEIGHTS_DIR", str(tmp_path))
    return tmp_path


def _stack(rng) -> Volume:
    arr = rng.integers(0, 255, (6, 32, 32, 3), dtype=np.uint8)
    return Volume(array=arr, spacing=(1.0, 1.0, 1.0), affine=affine_from_spacing((1.0, 1.0, 1.0)), modality="MR",
                  units="RGB", spacing_known=False, name="synthetic stack")


def test_strip_is_drawn_and_a_click_jumps_to_the_slice(tiny_models, rng) -> None:

    from medviz.ui.sequence import strip_key
    from medviz.ui.widgets import slice_key

    at, charts_before = read_all_slices(_stack(rng), 240)
    assert len(at.get("plotly_chart")) == charts_before + 1, "no probability strip"
    assert any("Click a point" in c.value for c in at.caption)
    token = at.session_state["medviz.viewer.token"]
    assert at.slider(key=slice_key(token, "axial")).value == 3  # the middle slice, 1-based
    at.session_state[strip_key(token)] = {"selection": {"points": [{"x": 5, "y": 0.4, "curve_number": 1}]}}
    at.run()
    assert not at.exception, at.exception
    assert at.slider(key=slice_key(token, "axial")).value == 5
    at.slider(key=slice_key(token, "axial")).set_value(2).run()  # the click is applied once: the slider stays free
    assert at.slider(key=slice_key(token, "axial")).value == 2


def test_the_strip_needs_a_stack(tiny_models, rng) -> None:
    from medviz.sequence.infer import SequenceError, prepare_stack

    one = Volume(array=np.zeros((1, 8, 8), np.float32), spacing=(1.0, 1.0, 1.0),
                 affine=affine_from_spacing((1.0, 1.0, 1.0)), modality="MR")
    with pytest.raises(SequenceError, match="at least 2 slices"):
        prepare_stack(one)
    x, notes = prepare_stack(_stack(rng))
    assert x.shape == (6, 3, 32, 32) and any("256x256" in n for n in notes)


def test_sequence_inference_leaves_the_shared_models_untouched(tiny_models, rng) -> None:
    """The encoder hooks the shared segmenter's bottleneck: the hook, modes and gradients must all be gone."""
    from medviz.sequence.encoder import slice_features
    from medviz.sequence.infer import load_models, predict_features, predict_stack, prepare_stack
    from tests.model_guard import assert_model_untouched

    model, segmenter, _ = load_models("tiny_seq")
    x, _ = prepare_stack(_stack(rng))
    feats = assert_model_untouched(segmenter, lambda: slice_features(segmenter, x, lr_flip=True))
    assert feats.shape == (6, 34)
    assert_model_untouched(model, lambda: predict_features(model, feats))
    assert_model_untouched(segmenter, lambda: predict_stack(model, segmenter, x))
    assert_model_untouched(model, lambda: predict_stack(model, segmenter, x))


def test_a_changed_segmenter_is_refused(tiny_models) -> None:
    import json

    from medviz.sequence.infer import SequenceError, load_models

    manifest = tiny_models / "manifest.json"
    data = json.loads(manifest.read_text())
    for m in data["models"]:
        if m["name"] == "tiny_seq":
            m["segmenter_sha256"] = "0" * 64  # trained on other segmenter weights
    manifest.write_text(json.dumps(data))
    with pytest.raises(SequenceError, match="must be trained again"):
        load_models("tiny_seq")
