"""Model cards of the super-resolution models: the spec, the training record and the stored test results
(``<name>.results.json``, written by ``python -m medviz.evaluate --model NAME --record``), with the bar of the
comparison computed from those numbers, never typed."""

from __future__ import annotations

from typing import Any

from medviz.models.specs import SuperResSpec
from medviz.superres.results import read_results, results_section

__all__ = ["SELECTION_RULES", "SYNTHETIC_NOTE", "read_results", "render_card"]

#: The checkpoint-selection rule of each arm, fixed before training (also written into the manifest).
SELECTION_RULES = {
    "pixel": "highest validation PSNR inside the brain mask (val_psnr)",
    "gan": "lowest val_gan_score = val HFEN / twin's val HFEN + val in-house Frechet distance / twin's",
}

SYNTHETIC_NOTE = ("**Synthetic images.** Every output of this model is synthetic: it is computed from a "
                  "low-resolution image and may contain structure that is not in the patient (hallucination). "
                  "Not for diagnosis.")


#: Published 4x results (../shared/docs/BENCHMARKS.md 5.3): natural images, so only the gaps compare.
REFERENCES = """## Published references (natural images; compare the gaps, not the numbers)
| source | data | PSNR pixel-loss twin | PSNR GAN | PSNR bicubic |
|---|---|---|---|---|
| Ledig et al., SRGAN, CVPR 2017 | Set5 | 32.05 (SRResNet) | 29.40 | 28.43 |
| mmagic srresnet_srgan configs | Set5 | 30.23 (SSIM 0.849) | 27.95 (SSIM 0.785) | - |

There the pixel-loss twin gains 3.6 dB over bicubic and the GAN gives back 2-3 dB of it by design, winning on
perceived realism (mean opinion score). Realism cannot be scored here the published way (LPIPS and Inception FID
download weights); HFEN, the in-house Frechet distance and the segmenter's Dice stand in for it. The project's
own brain-region bicubic measurement in BENCHMARKS.md (4x: 25.67 dB on 5 validation patients) uses another brain
region than this card's mask (pixels above 10 % of the slice maximum, closed and hole-filled), so its absolute
PSNR differs."""


def render_card(spec: SuperResSpec, results: dict[str, Any]) -> str:
    """The Markdown model card of ``spec`` with its stored ``results`` (see :mod:`medviz.superres.results`)."""
    t = spec.training
    arm = {"pixel": "pixel-loss generator (arm B)", "gan": "adversarially fine-tuned generator (arm C, a GAN)"}[spec.mode]
    lines = [
        f"# {spec.name}: 4x FLAIR super-resolution, {arm}",
        "",
        SYNTHETIC_NOTE,
        "",
        "## What it does",
        f"Input: a FLAIR slice reduced {spec.scale}x by area averaging (each {spec.scale}x{spec.scale} block "
        "becomes its mean; `medviz.superres.degrade`). The network, a MONAI `BasicUNet`, reads the bicubic "
        "upsampling of that input and predicts a residual added to it.",
        "",
        "## Training",
        f"Data: {spec.dataset} (Buda et al. 2019, TCGA LGG), patient-level `splits.json`: training patients "
        "for training, validation patients for selection, test patients for the one test look.",
        f"Command: `{t.get('command', '?')}`",
        f"Selection rule (fixed before training): {spec.provenance.get('selection_rule', '?')}; selected epoch "
        f"{t.get('best_epoch', '?')} of {t.get('epochs_run', '?')} ({t.get('status', '?')}), "
        f"{t.get('monitor', '?')} = {t.get('best_val', float('nan')):.4f}.",
    ]
    if spec.mode == "gan":
        lines += [f"Fine-tuned from the pixel-loss twin `{spec.twin}` against a MONAI `PatchDiscriminator` "
                  f"({t.get('disc_channels')} channels, {t.get('disc_layers')} layers, instance norm) with "
                  f"`PatchAdversarialLoss` (least squares), weight {t.get('adv_weight')}, plus the pixel loss "
                  f"(L1 + {t.get('ssim_weight')} (1 - SSIM))."]
    else:
        lines += [f"Loss: L1 + {t.get('ssim_weight')} (1 - SSIM), random {t.get('crop')} px crops, left-right flips."]
    if t.get("init_note"):
        lines += [f"Start weights: {t['init_note']}"]
    lines += ["", results_section(spec, results), "", REFERENCES]
    return "\n".join(lines) + "\n"
