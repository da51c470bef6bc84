"""The reconstruction task trains through the one engine and exports a loadable model + card."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from medviz.models.specs import ReconSpec, parse_spec


@pytest.fixture
def fake_lgg(tmp_path, phantom):
    """A tiny LGG-like folder: 3 cases x 2 slices of 32x32 RGB PNGs (FLAIR in channel 1) + splits."""
    root = tmp_path / "lgg"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rows, rng = [], np.random.default_rng(0)
    for c, case in enumerate(["A_1", "B_2", "C_3"]):
        for s in (1, 2):
            img = (phantom[::2, ::2] * (200 + 20 * c) * (0.8 + 0.2 * s)).clip(0, 255).astype(np.uint8)
            rgb = np.stack([rng.integers(0, 50, img.shape, dtype=np.uint8), img, img // 2], -1)
            Image.fromarray(rgb).save(root / "images" / f"{case}_{s}.png")
            Image.fromarray(np.zeros_like(img)).save(root / "masks" / f"{case}_{s}.png")
            rows.append({"case_id": case, "slice": s, "image": f"images/{case}_{s}.png", "mask": f"masks/{case}_{s}.png"})
    with open(root / "pairs.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    (root / "splits.json").write_text(json.dumps({"train": ["A_1"], "val": ["B_2"], "test": ["C_3"]}))
    return root


def test_flair_reader_takes_channel_1_scaled_per_slice(fake_lgg):
    from medviz.reconstruction.data import load_flair_slices

    d = load_flair_slices(fake_lgg, "test")
    assert d.images.shape == (2, 32, 32) and d.case_ids == ("C_3", "C_3") and d.slices == (1, 2)
    assert d.images.max() == pytest.approx(1.0)
    rgb = np.asarray(Image.open(fake_lgg / "images" / "C_3_1.png"))
    np.testing.assert_allclose(d.images[0], rgb[..., 1] / rgb[..., 1].max(), atol=1e-6)


@pytest.mark.parametrize("mode,features", [("recon", ["4", "4", "8", "8", "16", "4"]), ("denoise", ["4", "4", "8", "8", "16", "4"])])
def test_train_export_evaluate_roundtrip(fake_lgg, tmp_path, monkeypatch, mode, features, capsys):
    from medviz.evaluate import main as evaluate_main
    from medviz.train.cli import main as train_main

    out = tmp_path / "weights"
    monkeypatch.setenv("MEDVIZ_WEIGHTS_DIR", str(out))
    rc = train_main(["--task", "reconstruction", "--mode", mode, "--data", str(fake_lgg), "--epochs", "1",
                     "--batch-size", "2", "--device", "cpu", "--quiet", "--features", *features,
                     "--out", str(out), "--register", "--name", f"t_{mode}", "--run-dir", str(tmp_path / "run")])
    assert rc == 0
    entry = json.loads((out / "manifest.json").read_text())["models"][0]
    assert entry["mode"] == mode and entry["task"] == "reconstruction"
    spec = parse_spec(entry)  # what the export wrote parses into the typed spec
    assert isinstance(spec, ReconSpec) and spec.mode == mode and spec.residual
    assert (spec.cascades, spec.noise is None) == ((1, True) if mode == "recon" else (1, False))
    assert "python -m medviz.train" in (out / f"t_{mode}.md").read_text()
    capsys.readouterr()
    rc = evaluate_main(["--model", f"t_{mode}", "--json", "--data", str(fake_lgg), "--device", "cpu",
                        "--baseline-every", "1", "--update-card"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    assert res["model"] == f"t_{mode}" and res["n"] >= 1
    assert {"psnr", "ssim", "nmse", "psnr_ci"} <= set(res)
    expected = {"zero_filled", "cs_tv"} if mode == "recon" else {"noisy", "nlm", "bm3d"}
    assert set(res["baselines"]) == expected
    assert "| model |" in (out / f"t_{mode}.md").read_text()
