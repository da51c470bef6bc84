"""Model cards of reconstruction/denoising models: stored evaluation results (``<name>.results.json``)
rendered with the project targets and published references."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medviz.models.specs import ReconSpec


def read_results(path: Path) -> dict[str, Any]:
    import json

    return json.loads(path.read_text()) if path.exists() else {}


def store_result(entry: Any, result: dict[str, Any], command: str) -> None:
    """Keep one evaluation result beside the weights (``<name>.results.json``) and rewrite the card."""
    import fcntl
    import json

    key = (f"{result['mask']}_{result['acceleration']:g}x" if result["mode"] == "recon"
           else f"sigma_{result['noise_sigma']:g}")
    path = entry.weights_dir / f"{entry.name}.results.json"
    with open(entry.weights_dir / f"{entry.name}.results.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # several evaluations may finish at once
        results = read_results(path)
        results[key] = {"command": command, "result": result}
        path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
        (entry.weights_dir / f"{entry.name}.md").write_text(render_card(entry.spec, results))


def _row(name: str, r: dict[str, Any]) -> str:
    return (f"| {name} | {r['n']} | {r['psnr']:.2f} [{r['psnr_ci'][0]:.2f}, {r['psnr_ci'][1]:.2f}] | "
            f"{r['ssim']:.4f} [{r['ssim_ci'][0]:.4f}, {r['ssim_ci'][1]:.4f}] | "
            f"{r['nmse']:.5f} [{r['nmse_ci'][0]:.5f}, {r['nmse_ci'][1]:.5f}] |")


def _target_sentence(results: dict[str, Any]) -> str:
    """Whether the stored 4x results clear the project's bar, in words (computed, never typed)."""
    gains = {k: (v["result"]["psnr"] - v["result"]["baselines"]["zero_filled"]["psnr"], v["result"]["ssim"])
             for k, v in results.items() if k.endswith("_4x")}
    if not gains:
        return "Not yet evaluated at 4x against the project's target (+6 dB PSNR over zero-filled, SSIM >= 0.85)."
    text = "; ".join(f"{k}: {g:+.2f} dB, SSIM {s:.3f}" for k, (g, s) in sorted(gains.items()))
    met = all(g >= TARGET_GAIN_DB and s >= TARGET_SSIM for g, s in gains.values())
    return (f"Project target at 4x (+{TARGET_GAIN_DB:g} dB PSNR over zero-filled and SSIM >= {TARGET_SSIM}) "
            f"{'met' if met else 'NOT met'} on the test patients ({text}).")


def _accelerations_text(accelerations: tuple[float, ...]) -> str:
    """``[4, 4, 4, 8]`` -> ``"4x, 8x (drawn per sample with weights 3 : 1)"``."""
    from collections import Counter

    counts = Counter(accelerations)
    text = ", ".join(f"{a:g}x" for a in counts)
    if len(set(counts.values())) > 1:
        text += " (drawn per sample with weights " + " : ".join(str(n) for n in counts.values()) + ")"
    return text


def render_card(spec: ReconSpec, results: dict[str, Any]) -> str:
    """Markdown model card from the model's spec and stored evaluation results (no typed numbers)."""
    recon = spec.is_recon
    t = spec.training
    crop = list(spec.crop) if spec.crop else None  # printed as in the manifest, ``[64, 256]``
    lines = [f"# {spec.name}", "",
             ("Accelerated single-coil MRI reconstruction (MONAI ComplexUnet, residual, with data consistency)."
              if recon else "Rician denoising of MR magnitude slices (MONAI BasicUNet, residual)."), "",
             "## Data and licence",
             "FLAIR channel (index 1) of `lgg_flair_mri_seg` (TCGA-LGG via Buda et al. 2019; Kaggle release "
             "believed CC BY-NC-SA 4.0, TCIA data-usage policy; see data MANIFEST.md section 9). Patient-level "
             "`splits.json`: train 34 / val 5 / test 6 cases. Non-commercial research use only.", "",
             "## Preprocessing",
             "Each 2D slice divided by its maximum (range [0, 1]). "
             + ("Single-coil Cartesian k-space = MONAI centred orthonormal FFT of the magnitude slice; "
                "undersampled along the phase-encoding (column) axis with MONAI RandomKspaceMask / "
                "EquispacedKspaceMask, accelerations " + _accelerations_text(spec.accelerations)
                + " (centre fraction 0.08 at 4x, 0.04 at 8x). Training on brain slices, random crops of "
                f"{crop or 'the --crop size of the command'} (all 256 columns kept), horizontal flips."
                if recon else "Rician noise (MONAI RandRicianNoise) with sigma drawn uniformly in "
                f"[0, {spec.noise.max_sigma if spec.noise else None}] of the slice maximum; random crops ({crop or '--crop of the command'}), flips."),
             "", "## Architecture", f"`{spec.arch.name}` with `{spec.arch.kwargs}`; "
             + (f"x <- DC(x + f(x)) {spec.cascades} time(s) from x = z (shared weights), output |x|; "
               "z the complex zero-filled image." if recon else "output = y + f(y)."),
             "Weights stored as fp16 safetensors (loaded as float32).", "",
             "## Training", f"`{t.get('command', '?')}`", "",
             *([f"Initialisation (`--init`): {t['init_note']}", ""] if t.get("init_note") else []),
             *([f"Run history: {t['note']}", ""] if t.get("note") else []),
             f"Selection: best `{t.get('monitor')}` on validation patients = {float(t.get('best_val', 'nan')):.3f} at epoch "
             f"{t.get('best_epoch')} of {t.get('epochs_run')} ({t.get('status')}). L1 + 0.2 (1 - SSIM) loss, AdamW, cosine LR.",
             "", "## Test metrics (test patients, brain slices, 95 % patient-bootstrap CIs)",
             "Brain slices: >= 10 % of pixels above 0.1 of the slice maximum (same rule for model and baselines). "
             + ("CS-TV: sigpy TotalVariationRecon, single coil (mps = 1), lambda and iterations from "
                "`medviz.reconstruction.baselines.CS_TV_LAMBDA` / `CS_MAX_ITER`, picked on 12 validation slices at 4x with "
                "`python bench/reconstruct.py --tune-cs` (grid only partly run for lack of CPU time). "
                if recon else "NLM: scikit-image fast mode, h = 0.8 sigma, sigma from `estimate_sigma`; BM3D with "
                "the same estimated sigma (both blind, like the model). ")
             + "The slow baseline runs on every 8th scored slice; the paired-subset table compares all methods there."]
    if not results:
        lines.append("Not evaluated yet: run the evaluate commands with `--update-card`.")
    for key in sorted(k for k in results if k != "checks"):
        res, cmd = results[key]["result"], results[key]["command"]
        lines += ["", f"### {key}", f"`{cmd}`", "", "| method | n | PSNR dB | SSIM | NMSE |", "|---|---|---|---|---|",
                  _row("model", res)] + [_row(k, v) for k, v in res["baselines"].items()]
        lines += ["", "Paired subset (slices where the slow baseline ran):", "",
                  "| method | n | PSNR dB | SSIM | NMSE |", "|---|---|---|---|---|"]
        lines += [_row(k, v) for k, v in res["paired_subset"].items()]
    if results.get("checks"):
        lines += ["", "## Speed and storage checks (CPU)"]
        for c in results["checks"]:
            lines += ["", f"`{c['command']}`", "", c["output"]]
    lines += ["", "## Published reference numbers", REFERENCES if recon else
              "No published denoising numbers for this data; compare with the NLM and BM3D rows above.",
              "", "## Intended use and limits",
              "Research demonstration of how undersampling/noise degrades an image and what a learned model "
              "recovers. NOT for diagnosis. The reference is a magnitude PNG (8-bit, background "
              "zero, already reconstructed and post-processed by the scanner), so the simulated k-space has no phase, "
              "no coil sensitivities and no real noise: numbers on real raw k-space will be lower. Trained on "
              "34 patients from one public LGG cohort at 256x256; other contrasts, sizes, anatomy or real multi-coil "
              "data are out of distribution. A learned model can hallucinate or remove small structures: always "
              "look at the difference map."
              + (" " + _target_sentence(results) if recon else "")]
    return "\n".join(lines) + "\n"


REFERENCES = """Published reference numbers (not comparable one-to-one: fastMRI brain is multi-coil raw
k-space, ours is single-coil k-space simulated from 8-bit magnitude PNGs; see BENCHMARKS.md section 3):
fastMRI brain, 1D equispaced (ATOMMIC paper, arXiv 2404.19665): zero-filled 4x SSIM 0.671 / PSNR 24.12 dB,
8x 0.591 / 21.03; U-Net 4x 0.885 / 33.09, 8x 0.847 / 29.87; VarNet 4x 0.892 / 34.00, 8x 0.856 / 30.73
(learned reconstruction about +9 dB and +0.2 SSIM over zero-filled). MONAI tutorials (brain AXT2, 4x):
U-Net SSIM 0.9436, E2E-VarNet 0.9650. There is no published denoising reference on this data set."""


TARGET_GAIN_DB = 6.0  # project bar at 4x: PSNR at least this far above zero-filled, and SSIM >= 0.85


TARGET_SSIM = 0.85
