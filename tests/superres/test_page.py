"""AppTest of pages/superres.py with tiny registered generators and a synthetic study in the session (the LGG
test patient when the shared data is there)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from medviz.models.nets import build_network
from medviz.models.registry import sha256_file, upsert_entry
from medviz.models.weights import save_state_dict
from medviz.superres.degrade import SuperResError
from medviz.superres.export import SYNTHETIC_LABEL
from medviz.types import Volume, affine_from_spacing
from medviz.ui import superres
from medviz.ui.state import VOLUME_KEY
from tests.model_guard import assert_model_untouched

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "superres.py")
TIMEOUT = 90  # s per run; the 2 CPU cores are shared
#: A tiny generator of the shipped architecture (MONAI BasicUNet, 1 -> 1 channel).
TINY_ARCH = {"name": "BasicUNet", "kwargs": {"spatial_dims": 2, "in_channels": 1, "out_channels": 1,
                                             "features": [4, 4, 8, 8, 16, 4], "norm": "batch"}}


def register_tiny_sr(weights_dir: Path, gan: bool = True) -> None:
    """Register untrained, seeded tiny generators ``tiny_pixel`` (mode pixel) and, with ``gan``, ``tiny_gan`` (mode
    gan, twin tiny_pixel) in ``weights_dir``'s manifest, each with a model card file. Their outputs are not bicubic
    (random weights), so the arms differ."""
    import torch

    weights_dir.mkdir(parents=True, exist_ok=True)
    for seed, (name, mode) in enumerate([("tiny_pixel", "pixel")] + ([("tiny_gan", "gan")] if gan else [])):
        torch.manual_seed(seed)
        path = weights_dir / f"{name}.safetensors"
        save_state_dict(build_network(TINY_ARCH).eval(), path)
        (weights_dir / f"{name}.md").write_text(f"# {name}: tiny test generator ({mode})\n")
        upsert_entry({"name": name, "task": "superres", "mode": mode, "scale": 4, "residual": True,
                      "file": path.name, "sha256": sha256_file(path), "card": f"{name}.md", "arch": TINY_ARCH,
                      **({"twin": "tiny_pixel"} if mode == "gan" else {})}, weights_dir)


def _isolate(monkeypatch, tmp_path: Path, weights: Path) -> None:
    monkeypatch.setenv("MEDVIZ_WEIGHTS_DIR", str(weights))
    monkeypatch.setenv("MEDVIZ_USER_MODELS_DIR", str(tmp_path / "user-models"))  # no promoted model of elsewhere
    monkeypatch.setenv("MEDVIZ_DEVICE", "cpu")
    superres.cached_model.clear()  # a model of another test's registry never serves this one


@pytest.fixture
def tiny_sr(tmp_path, monkeypatch) -> Path:
    weights = tmp_path / "weights"
    register_tiny_sr(weights)
    _isolate(monkeypatch, tmp_path, weights)
    return weights


def _study() -> Volume:
    """Three 64x64 slices of a head-like phantom (ellipse with brighter blobs), 0.5 mm pixels."""
    y, x = np.mgrid[-1:1:64j, -1:1:64j]
    img = ((x / 0.8) ** 2 + (y / 0.9) ** 2 < 1) * 0.5 + ((x - 0.2) ** 2 + (y + 0.1) ** 2 < 0.05) * 0.4
    img = img + 0.1 * np.sin(12 * x) * (img > 0)
    arr = np.stack([img * 0.7, img, img * 0.9]).astype(np.float32) * 1000
    return Volume(arr, (1.0, 0.5, 0.5), affine_from_spacing((1.0, 0.5, 0.5)), modality="MR", name="phantom")


def _page(study: Volume | None = None) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    if study is not None:
        at.session_state[VOLUME_KEY] = study
    return at.run()


def _charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def _titles(fig: dict) -> list[str]:
    return [a["text"] for a in fig["layout"].get("annotations", [])]


def _sources(fig: dict) -> list[str]:
    return [t["source"] for t in fig["data"] if t["type"] == "image"]


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def test_without_models_the_page_says_how_to_train_them(tmp_path, monkeypatch):
    _isolate(monkeypatch, tmp_path, tmp_path / "none")
    at = _page()
    assert not at.exception
    assert any("python -m medviz.train --task superres" in i.value for i in at.info)


def test_every_arm_is_shown_labelled_synthetic_with_metrics_and_the_model_untouched(tiny_sr):
    model = superres.cached_model("tiny_gan")[0]
    at = assert_model_untouched(model, lambda: _page(_study()))
    _ok(at)
    main, blend = _charts(at)
    titles = _titles(main)
    for arm in ("low-res input (16×16)", "bicubic (A)", "pixel-loss (B) · tiny_pixel", "GAN (C) · tiny_gan",
                "real (64×64)"):
        assert any(t.startswith(arm) for t in titles), (arm, titles)
    labelled = [t.split("<br>")[0] for t in titles if SYNTHETIC_LABEL in t]
    assert labelled == ["bicubic (A)", "pixel-loss (B) · tiny_pixel", "GAN (C) · tiny_gan"]  # not the input nor real
    assert sum(t.startswith("|") for t in titles) == 3  # |difference| maps under the three arms
    assert len(_sources(main)) == 8  # every panel is a PNG, not a heatmap of numbers
    assert SYNTHETIC_LABEL in _titles(blend)[0]
    assert any(SYNTHETIC_LABEL in w.value for w in at.warning)
    table = at.dataframe[0].value
    assert list(table["arm"]) == ["bicubic (A)", "pixel-loss (B)", "GAN (C)"]
    assert table["PSNR (dB)"].notna().all() and table["pixels"].str.startswith("brain mask").all()
    assert len(set(table["PSNR (dB)"])) > 1  # the arms are measured, not copied
    assert [b.proto.label for b in at.get("download_button")] == ["PNG (label burned in)", "NIfTI",
                                                                  "DICOM (Secondary Capture)"]
    assert any("Model card: tiny_gan" in e.proto.label for e in at.expander)
    assert any("hallucinate" in m.value for m in at.markdown)


def test_the_blend_slider_moves_the_blend_between_its_two_arms(tiny_sr):
    at = _page(_study())
    _ok(at)
    main = _charts(at)[0]
    arm_png = dict(zip(_titles(main), _sources(main)))  # title -> PNG, in panel order (titles lead the images)
    pixel = next(v for k, v in arm_png.items() if k.startswith("pixel-loss (B)"))
    gan = next(v for k, v in arm_png.items() if k.startswith("GAN (C)"))
    assert at.selectbox(key="sr.blend.first").value == "pixel_loss"
    assert at.selectbox(key="sr.blend.second").value == "gan"
    seen = {}
    for t in (0.0, 0.5, 1.0):
        at.slider(key="sr.blend.t").set_value(t).run()
        _ok(at)
        blend = _charts(at)[1]
        assert SYNTHETIC_LABEL in _titles(blend)[0] and f"{1 - t:.2f} pixel-loss (B)" in _titles(blend)[0]
        seen[t] = _sources(blend)[0]
    assert seen[0.0] == pixel and seen[1.0] == gan  # the end points are the arms themselves
    assert seen[0.5] not in (pixel, gan)


def test_an_image_already_low_resolution_is_super_resolved_as_it_is_without_metrics(tiny_sr, monkeypatch):
    at = _page(_study())
    at.checkbox(key="sr.as_is").check().run()
    _ok(at)
    titles = _titles(_charts(at)[0])
    assert any(t.startswith("low-res input (64×64)") for t in titles)  # the slice itself is the input
    assert not any(t.startswith("real") or t.startswith("|") for t in titles)  # no real image, no difference
    assert not at.dataframe  # no metrics without a real image
    assert any("no metrics" in i.value for i in at.info)

    calls = []
    real = superres.run_arms
    monkeypatch.setattr(superres, "run_arms", lambda *a, **k: calls.append(1) or real(*a, **k))
    at.slider(key="sr.window").set_value((0.1, 0.8)).run()  # a new window redraws, it does not recompute
    _ok(at)
    assert calls == []


def test_without_a_gan_the_page_compares_bicubic_and_the_pixel_loss_model(tmp_path, monkeypatch):
    weights = tmp_path / "weights"
    register_tiny_sr(weights, gan=False)
    _isolate(monkeypatch, tmp_path, weights)
    at = _page(_study())
    _ok(at)
    assert any("No GAN model" in c.value for c in at.caption)
    assert list(at.dataframe[0].value["arm"]) == ["bicubic (A)", "pixel-loss (B)"]


def test_a_new_session_can_open_the_bundled_example(tiny_sr):
    at = _page()
    assert not at.exception
    at.button(key="sr.open_example").click().run()
    _ok(at)
    assert any("cropped" in i.value for i in at.info)  # 41x33 slices: cropped to 40x32 to divide by 4
    assert at.get("plotly_chart")


def test_the_lgg_test_patient_is_super_resolved_from_its_flair_channel(tiny_sr, data_dir):
    at = _page()
    at.button(key="sr.lgg").click().run()
    _ok(at)
    assert at.selectbox(key="sr.channel").value == 1  # FLAIR
    titles = _titles(_charts(at)[0])
    assert any(t.startswith("low-res input (64×64)") for t in titles) and any(t.startswith("real (256×256)") for t in titles)
    assert len(at.dataframe[0].value) == 3


def test_slices_the_page_cannot_use_are_refused_in_words_and_others_cropped_to_the_scale(tiny_sr):
    with pytest.raises(SuperResError, match="more than the 1024"):
        superres.prepare_input(np.ones((300, 200)), already_low_res=True)  # a 1200-px output
    with pytest.raises(SuperResError, match="too small"):
        superres.prepare_input(np.ones((12, 40)), already_low_res=False)
    real, low, peak, notes = superres.prepare_input(np.arange(42 * 35, dtype=np.float32).reshape(42, 35), False)
    assert real.shape == (40, 32) and low.shape == (10, 8) and peak == 42 * 35 - 1 and "cropped" in notes[0]
    with pytest.raises(SuperResError, match="between 0 and 1"):
        superres.blend(low, low, 1.5)
    big = Volume(np.ones((1, 300, 300), np.float32), (1.0, 1.0, 1.0), affine_from_spacing((1.0, 1.0, 1.0)))
    at = _page(big)
    at.checkbox(key="sr.as_is").check().run()
    assert not at.exception and any("more than the 1024" in e.value for e in at.error)
