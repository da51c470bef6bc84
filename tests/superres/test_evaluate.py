"""The super-resolution evaluate contract on two real LGG patients (ten slices each) with tiny untrained
generators, and the card's results section rendered from stored numbers."""

from __future__ import annotations

import copy
import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from medviz.config import get_settings
from medviz.datasets.lgg import cases, load_case
from medviz.models.nets import build_network
from medviz.models.registry import get_entry, sha256_file, upsert_entry
from medviz.models.weights import save_state_dict
from medviz.superres.data import FLAIR_CHANNEL, brain_mask, is_brain_slice, scale_to_max
from medviz.superres.degrade import bicubic, degrade
from medviz.superres.evaluate import OPTIONS, evaluate
from medviz.superres.infer import BICUBIC, GAN, PIXEL_LOSS
from medviz.superres.metrics import hfen, ssim
from medviz.superres.results import compute_bar, results_section, store_result
from tests.lgg_folders import lgg_folder

ROOT = Path(__file__).resolve().parents[2]
#: Two 20-slice training patients (both with tumour), cut to their slices 7..14 to keep the test short.
CASES = ["TCGA_CS_4942_19970222", "TCGA_HT_7602_19951103"]
SLICES = range(7, 15)
TINY = {"name": "BasicUNet", "kwargs": {"spatial_dims": 2, "in_channels": 1, "out_channels": 1,
                                        "features": [4, 4, 8, 8, 16, 4], "norm": "batch"}}
ARM_KEYS = {"psnr", "ssim", "hfen", "tumour_psnr", "fid_inhouse", "downstream_dice", "false_positive_components",
            "seconds_per_slice"}
KEYS = {"model", "task", "split", "n_patients", "n_slices", "scale", "baselines", "differences", "bar",
        "reference", "segmenter", "fid_bootstrap"} | ARM_KEYS
INTERVAL_METRICS = ("psnr", "ssim", "hfen", "tumour_psnr", "downstream_dice")
FAST = ["--bootstrap", "200", "--fid-bootstrap", "3", "--device", "cpu"]


@pytest.fixture(scope="module")
def sr_folder(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An LGG-layout folder (no splits.json) with slices 7..14 of the two :data:`CASES` (files linked)."""
    root = lgg_folder(data_dir, tmp_path_factory.mktemp("sr") / "two", {"test": CASES}, with_splits=False)
    with open(root / "pairs.csv", newline="") as f:
        reader = csv.DictReader(f)
        fields, rows = reader.fieldnames, [r for r in reader if int(r["slice"]) - 1 in SLICES]
    with open(root / "pairs.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return root


def _register_generator(wd: Path, name: str, seed: int, **fields: object) -> None:
    torch.manual_seed(seed)
    path = wd / f"{name}.safetensors"
    save_state_dict(build_network(TINY).eval(), path)
    upsert_entry({"name": name, "task": "superres", "file": path.name, "sha256": sha256_file(path), "arch": TINY,
                  "scale": 4, "degradation": "area", "residual": True, "segmenter": "lgg_unet", **fields}, wd)


@pytest.fixture(scope="module")
def sr_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A weights folder with the shipped segmenter (linked) and two untrained tiny generators: ``tiny_pixel``
    and ``tiny_gan`` (its twin ``tiny_pixel``); MEDVIZ_WEIGHTS_DIR points to it for the module."""
    shipped = get_settings().weights_dir
    seg = get_entry("lgg_unet", shipped)
    wd = tmp_path_factory.mktemp("weights")
    os.symlink(shipped / seg.spec.file, wd / seg.spec.file)
    models = json.loads((shipped / "manifest.json").read_text())["models"]
    upsert_entry(next(m for m in models if m["name"] == "lgg_unet"), wd)
    _register_generator(wd, "tiny_pixel", 0, mode="pixel")
    _register_generator(wd, "tiny_gan", 1, mode="gan", twin="tiny_pixel")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDVIZ_WEIGHTS_DIR", str(wd))
        yield wd


@pytest.fixture(scope="module")
def gan_result(sr_registry: Path, sr_folder: Path) -> dict:
    """``python -m medviz.evaluate --model tiny_gan --json --data <sr_folder>`` run as a command."""
    cmd = [sys.executable, "-m", "medviz.evaluate", "--model", "tiny_gan", "--json", "--data", str(sr_folder), *FAST]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600,
                         env={**os.environ, "MEDVIZ_WEIGHTS_DIR": str(sr_registry)})
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)  # nothing but the one JSON object on stdout


@pytest.fixture(scope="module")
def pixel_result(sr_registry: Path, sr_folder: Path) -> dict:
    """The pixel model evaluated in-process, recorded beside its weights."""
    options = OPTIONS(data=sr_folder, device="cpu", bootstrap=200, fid_bootstrap=3, record=True)
    return evaluate(get_entry("tiny_pixel", sr_registry), options)


def _direct_bicubic(root: Path) -> dict[str, float]:
    """Brain-slice PSNR (written out here), SSIM and HFEN of bicubic, mean over the slices of every case."""
    psnrs, ssims, hfens = [], [], []
    for case in cases(root):
        stack, _ = load_case(root, case)
        for k in range(stack.shape[0]):
            real, _ = scale_to_max(stack[k, ..., FLAIR_CHANNEL])
            if not is_brain_slice(real):
                continue
            up, m = bicubic(degrade(real)), brain_mask(real)
            psnrs.append(10 * np.log10(1.0 / np.mean((real[m].astype(np.float64) - up[m]) ** 2)))
            ssims.append(ssim(real, up, m))
            hfens.append(hfen(real, up, m))
    return {"psnr": float(np.mean(psnrs)), "ssim": float(np.mean(ssims)), "hfen": float(np.mean(hfens)),
            "n": len(psnrs)}


@pytest.mark.data
def test_gan_contract_through_the_command_line(gan_result, sr_registry):
    r = gan_result
    assert KEYS <= set(r) and r["task"] == "superres" and r["model"] == "tiny_gan" and r["split"] == "all"
    assert r["n_patients"] == 2 and r["n_slices"] == 2 * len(SLICES) and r["scale"] == 4
    assert set(r["baselines"]) == {BICUBIC, PIXEL_LOSS}
    assert all(ARM_KEYS <= set(b) for b in r["baselines"].values())
    assert r["baselines"][PIXEL_LOSS]["model"] == "tiny_pixel"
    assert set(r["differences"]) == {"pixel_loss_minus_bicubic", "gan_minus_pixel_loss"}
    assert set(r["bar"]["checks"]) == {"hfen_lower", "fid_inhouse_lower", "downstream_dice_kept",
                                       "false_positives_not_more"}
    assert r["segmenter"]["sha256"] == get_entry("lgg_unet", sr_registry).spec.sha256
    assert r["fid_bootstrap"] == 3 and 0 <= r["downstream_dice"] <= 1 and r["fid_inhouse"] >= 0
    assert r["left_out_slices"] == {"psnr": 0, "ssim": 0, "hfen": 0, "tumour_psnr": 0}
    d = r["differences"]["gan_minus_pixel_loss"]["hfen"]["mean"]
    assert d == pytest.approx(r["hfen"] - r["baselines"][PIXEL_LOSS]["hfen"])


@pytest.mark.data
def test_bicubic_baseline_equals_metrics_computed_directly(gan_result, sr_folder):
    direct = _direct_bicubic(sr_folder)
    assert direct["n"] == gan_result["n_brain_slices"]
    for metric in ("psnr", "ssim", "hfen"):
        assert gan_result["baselines"][BICUBIC][metric] == pytest.approx(direct[metric], rel=1e-9), metric


@pytest.mark.data
def test_pixel_contract_and_record(pixel_result, gan_result, sr_registry):
    r = pixel_result
    assert KEYS <= set(r) and r["model"] == "tiny_pixel" and set(r["baselines"]) == {BICUBIC}
    assert set(r["differences"]) == {"pixel_loss_minus_bicubic"}
    gain = r["bar"]["checks"]["psnr_gain_db"]
    assert gain["value"] == pytest.approx(r["psnr"] - r["baselines"][BICUBIC]["psnr"])
    assert r["bar"]["met"] == (gain["value"] >= 2.0)
    # the same slices and the same generator: the GAN's pixel-loss baseline is this model
    for metric in ("psnr", "ssim", "hfen", "tumour_psnr", "downstream_dice", "false_positive_components"):
        assert gan_result["baselines"][PIXEL_LOSS][metric] == pytest.approx(r[metric], rel=1e-6), metric
    stored = json.loads((sr_registry / "tiny_pixel.results.json").read_text())
    assert stored["evaluations"]["all"]["result"]["psnr"] == r["psnr"]
    assert "--record" in stored["evaluations"]["all"]["command"] and not stored.get("test_looks")
    card = (sr_registry / "tiny_pixel.md").read_text()
    assert "## Test results" in card and "Test looks recorded: 0." in card and "in-house" in card


@pytest.mark.data
def test_intervals_contain_their_mean(gan_result, pixel_result):
    for r in (gan_result, pixel_result):
        for name, diff in r["differences"].items():
            for metric in INTERVAL_METRICS:
                lo, hi = diff[metric]["ci"]
                assert lo - 1e-12 <= diff[metric]["mean"] <= hi + 1e-12, (name, metric)
            assert diff["fid_inhouse"]["ci"] is not None


def _arm(psnr: float, hfen: float, fid: float, dice: float, fp: int) -> dict:
    return {"psnr": psnr, "ssim": 0.9, "hfen": hfen, "tumour_psnr": psnr - 3, "fid_inhouse": fid,
            "downstream_dice": dice, "false_positive_components": fp, "seconds_per_slice": 0.01}


def _stored_result(mode: str, arms: dict[str, dict], split: str = "test") -> dict:
    """A result in the evaluate contract's shape, its bar and differences computed from ``arms``."""
    order = [a for a in (BICUBIC, PIXEL_LOSS, GAN) if a in arms]
    model = order[-1]
    diffs = {f"{b}_minus_{a}": {k: {"mean": arms[b][k] - arms[a][k], "ci": [arms[b][k] - arms[a][k] - 0.1,
                                                                           arms[b][k] - arms[a][k] + 0.1]}
                                for k in ("psnr", "ssim", "hfen", "tumour_psnr", "downstream_dice",
                                          "false_positive_components", "fid_inhouse")}
             for a, b in zip(order, order[1:])}
    baselines = {a: {**arms[a], **({"model": "tiny_pixel"} if a == PIXEL_LOSS else {})} for a in order[:-1]}
    return {"model": "tiny_" + mode, "task": "superres", "mode": mode, "split": split, "n_patients": 6,
            "n_slices": 220, "n_brain_slices": 150, "n_tumour_slices": 60, "scale": 4, **arms[model],
            "baselines": baselines, "reference": {"downstream_dice": 0.8, "false_positive_components": 3},
            "segmenter": {"name": "lgg_unet", "sha256": "0" * 64}, "differences": diffs, "bootstrap": 2000,
            "fid_bootstrap": 200, "bar": compute_bar(mode, arms)}


def test_results_section_bar_follows_the_numbers():
    spec = SimpleNamespace(twin="tiny_pixel")
    a = _arm(26.0, 0.60, 12.0, 0.80, 4)
    b = _arm(28.5, 0.50, 10.0, 0.82, 3)
    text = results_section(spec, {"evaluations": {"test": {"command": "cmd", "result": _stored_result(
        "pixel", {BICUBIC: a, PIXEL_LOSS: b})}}})
    assert "Bar of issue #17 (B against A) met" in text and "2.5 against 2" in text
    text = results_section(spec, {"evaluations": {"test": {"command": "cmd", "result": _stored_result(
        "pixel", {BICUBIC: a, PIXEL_LOSS: {**b, "psnr": 27.0}})}}})
    assert "(B against A) NOT met" in text

    good_gan = _arm(28.0, 0.45, 8.0, 0.815, 3)
    text = results_section(spec, {"evaluations": {"test": {"command": "cmd", "result": _stored_result(
        "gan", {BICUBIC: a, PIXEL_LOSS: b, GAN: good_gan})}}})
    assert "(C against B) met" in text and "negative result" not in text and "in-house" in text
    worse_dice = {**good_gan, "downstream_dice": 0.80}  # 0.02 below B
    text = results_section(spec, {"evaluations": {"test": {"command": "cmd", "result": _stored_result(
        "gan", {BICUBIC: a, PIXEL_LOSS: b, GAN: worse_dice})}}})
    assert "(C against B) NOT met" in text
    assert "`tiny_pixel` stays the default; this GAN is a recorded negative result" in text
    more_fp = {**good_gan, "false_positive_components": 4}
    assert not compute_bar("gan", {BICUBIC: a, PIXEL_LOSS: b, GAN: more_fp})["met"]


def test_store_result_counts_test_looks(tmp_path):
    arms = {BICUBIC: _arm(26.0, 0.60, 12.0, 0.80, 4), PIXEL_LOSS: _arm(28.5, 0.50, 10.0, 0.82, 3)}
    entry = SimpleNamespace(name="tiny_pixel", weights_dir=tmp_path, spec=SimpleNamespace(twin=None))
    render = results_section  # the card is its results section here
    store_result(entry, _stored_result("pixel", arms), "python -m medviz.evaluate --model tiny_pixel --record", render)
    second = copy.deepcopy(_stored_result("pixel", arms))
    second["psnr"] = 27.0
    stored = store_result(entry, second, "python -m medviz.evaluate --model tiny_pixel --record", render)
    store_result(entry, _stored_result("pixel", arms, split="val"), "python -m medviz.evaluate --split val", render)
    assert [look["bar_met"] for look in stored["test_looks"]] == [True, False]
    card = (tmp_path / "tiny_pixel.md").read_text()
    assert "Test looks recorded: 2." in card and "(B against A) NOT met" in card  # the latest test look is shown
