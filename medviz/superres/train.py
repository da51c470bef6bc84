"""Super-resolution task: 4x LGG FLAIR from its area-averaged version (``python -m medviz.train --task superres``).

Both trained arms share one generator architecture, a MONAI ``BasicUNet`` that reads the bicubic
upsampling of the low-resolution slice and predicts a residual added to it (:mod:`medviz.superres.degrade`):

* ``--mode pixel`` (arm B): L1 + ``ssim_weight`` (1 - SSIM) pixel loss. Selection rule (fixed before
  training): the epoch with the highest validation PSNR inside the brain mask (``val_psnr``).
* ``--mode gan`` (arm C): B's weights (``--init``) fine-tuned adversarially against a MONAI
  ``PatchDiscriminator`` with ``PatchAdversarialLoss`` (least squares), plus the same pixel loss; both
  networks are one :class:`~medviz.models.adversarial.AdversarialPair`, so the engine's optimiser,
  checkpoints and resume cover both. Selection rule (fixed before training): the lowest
  ``val_gan_score`` = val HFEN / B's val HFEN + val in-house Fréchet distance / B's, the two measures C
  must beat B on, each relative to B on the same validation slices. The generator and discriminator losses
  are streamed with every step as their own curves.

Training samples random ``crop x crop`` patches of the real brain slices of the training patients (left-right
flips); the degradation is applied to each patch on the fly. Validation uses the whole brain slices of the
validation patients (every k-th with ``--val-limit``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medviz.constants import Task
from medviz.datasets.lgg import load_case
from medviz.models.adversarial import AdversarialPair
from medviz.models.nets import build_network
from medviz.models.specs import SuperResSpec
from medviz.models.weights import load_model, load_state_dict, save_state_dict
from medviz.options import option
from medviz.superres import card
from medviz.superres.data import brain_mask, default_root, load_sr_slices
from medviz.superres.degrade import SCALE, bicubic_tensor, degrade_tensor
from medviz.superres.features import encoder_features, fixed_scale_input, flair_scale, segmenter_input
from medviz.superres.metrics import frechet_distance, hfen, psnr, ssim
from medviz.train.task import TaskData, TrainTask, init_note_option, init_option
from medviz.types import MedvizError

DEFAULT_FEATURES = (16, 32, 64, 128, 256, 16)


@dataclass(frozen=True)
class SuperResTrainOptions:
    """Options of the super-resolution task (``python -m medviz.train --task superres ...``)."""

    mode: str = option("pixel", label="Arm", choices=["pixel", "gan"],
                       help="pixel: L1 + SSIM loss; gan: fine-tune --init adversarially (PatchDiscriminator, "
                            "least squares) plus the pixel loss")
    crop: int = option(96, label="Training crop (pixels, multiple of 4)", min=16, max=256,
                       help="square training patch of the real slice, degraded on the fly")
    features: list[int] | None = option(None, label="Generator widths", min=1,
                                        help="BasicUNet widths (6 values, default 16 32 64 128 256 16)")
    ssim_weight: float = option(0.2, label="SSIM weight", min=0.0, max=10.0,
                                help="pixel loss = L1 + w (1 - SSIM)")
    adv_weight: float = option(0.01, label="Adversarial weight (gan)", min=0.0, max=10.0,
                               help="gan: generator loss = pixel loss + w x least-squares adversarial loss")
    disc_channels: int = option(32, label="Discriminator width (gan)", min=4, max=512,
                                help="gan: channels of the PatchDiscriminator's first layer")
    disc_layers: int = option(3, label="Discriminator layers (gan)", min=1, max=6,
                              help="gan: downsampling layers of the PatchDiscriminator")
    disc_lr_factor: float = option(1.0, label="Discriminator learning-rate factor (gan)", min=0.0, max=100.0,
                                   help="gan: the discriminator's learning rate is this times --lr")
    twin: str = option("", label="Pixel-loss twin (gan)",
                       help="gan: the registered pixel-loss model the start weights are (its baseline and "
                            "the reference of the selection score)")
    segmenter: str = option("lgg_unet", label="Segmenter (Fréchet features, downstream)",
                            help="registered segmentation model whose encoder gives the Fréchet features")
    init: Path | None = init_option()
    init_note: str = init_note_option()
    val_limit: int = option(0, label="Max validation slices (0: all)", min=0,
                            help="use every k-th val slice so at most N remain (0: all)")


def pixel_loss(pred: Any, target: Any, ssim_weight: float) -> Any:
    """L1 + ``ssim_weight`` (1 - SSIM) (MONAI ``SSIMLoss``, data range 1) of ``(B, 1, H, W)`` tensors."""
    import torch.nn.functional as F
    from monai.losses import SSIMLoss

    loss = F.l1_loss(pred, target)
    if ssim_weight:
        loss = loss + ssim_weight * SSIMLoss(spatial_dims=2, data_range=1.0)(pred, target)
    return loss


class SuperResTask(TrainTask):
    name = Task.SUPERRES
    monitor = "val_psnr"
    mode = "max"
    channels_last = False

    Options = SuperResTrainOptions

    def __init__(self, options: Any = None, *, data: Path | str | None = None, seed: int = 0) -> None:
        super().__init__(options, data=data, seed=seed)
        if self.options.mode == "gan":
            if not self.options.init:
                raise MedvizError("--mode gan fine-tunes a pixel-loss model: give its weights with --init")
            self.monitor, self.mode = "val_gan_score", "min"
        if self.options.crop % SCALE:
            raise MedvizError(f"--crop {self.options.crop} must be a multiple of the scale {SCALE}")
        self._last: dict[str, float] = {}
        self._twin_val: dict[str, float] | None = None
        self._val_context: dict[str, Any] = {}

    # --- data ------------------------------------------------------------------------------------
    def build_data(self) -> TaskData:
        from monai.data import Dataset
        from monai.transforms import Compose, RandFlipd, RandSpatialCropd

        a = self.options
        train = load_sr_slices(self.data_path, "train").brain()
        val = load_sr_slices(self.data_path, "val").brain()
        keep = list(range(len(val.images)))
        if a.val_limit and len(keep) > a.val_limit:
            keep = keep[:: int(np.ceil(len(keep) / a.val_limit))]
        aug = Compose([RandSpatialCropd(keys=["image"], roi_size=(a.crop, a.crop), random_size=False),
                       RandFlipd(keys=["image"], prob=0.5, spatial_axis=1)])
        train_items = [{"image": x[None]} for x in train.images]
        val_items = [{"image": val.images[i][None], "index": i} for i in keep]
        self._val_context = {"slices": val, "keep": keep}
        summary = {"arm": a.mode, "scale": SCALE, "degradation": "area (block mean)",
                   "train_slices": len(train_items), "train_cases": len(set(train.case_ids)),
                   "val_slices": len(val_items), "val_cases": len(set(val.case_ids)), "crop": a.crop}
        samples = [train.images[i] for i in np.linspace(0, len(train.images) - 1, 4).astype(int)]
        return TaskData(Dataset(train_items, transform=aug), Dataset(val_items), summary, samples=samples,
                        sample_captions=["real FLAIR slice (training)"] * len(samples))

    # --- model -----------------------------------------------------------------------------------
    def arch(self) -> dict[str, Any]:
        f = self.options.features
        return {"name": "BasicUNet", "kwargs": {"spatial_dims": 2, "in_channels": 1, "out_channels": 1,
                                                "features": list(f) if f else list(DEFAULT_FEATURES),
                                                "norm": "batch"}}

    def _generator(self) -> Any:
        import torch

        g = build_network(self.arch())
        if self.options.init:
            g.load_state_dict(load_state_dict(self.options.init), strict=True)
        else:  # residual: start from the bicubic image (f = 0)
            torch.nn.init.zeros_(g.final_conv.weight)
            torch.nn.init.zeros_(g.final_conv.bias)
        return g

    def build_model(self) -> Any:
        if self.options.mode == "pixel":
            return self._generator()
        from monai.networks.nets import PatchDiscriminator

        a = self.options
        disc = PatchDiscriminator(spatial_dims=2, channels=a.disc_channels, in_channels=1, out_channels=1,
                                  num_layers_d=a.disc_layers, norm="INSTANCE")
        return AdversarialPair(self._generator(), disc, residual=True)

    def load_init(self, model: Any) -> bool:
        return bool(self.options.init)  # loaded into the generator by build_model

    def parameter_groups(self, model: Any, lr: float) -> Any:
        if self.options.mode == "pixel":
            return model.parameters()
        return [{"params": model.generator.parameters()},
                {"params": model.discriminator.parameters(), "lr": lr * self.options.disc_lr_factor}]

    @staticmethod
    def generator_of(model: Any) -> Any:
        """The generator inside ``model`` (a bare network, an :class:`AdversarialPair` or DDP around one)."""
        m = getattr(model, "module", model)
        return m.generator if isinstance(m, AdversarialPair) else m

    # --- loss ------------------------------------------------------------------------------------
    def training_loss(self, model: Any, batch: dict[str, Any]) -> Any:
        real = batch["image"]
        up = bicubic_tensor(degrade_tensor(real))
        if self.options.mode == "pixel":
            pred = up + model(up)
            loss = pixel_loss(pred, real, self.options.ssim_weight)
            self._last = {}
            return loss
        from monai.losses import PatchAdversarialLoss

        adv = PatchAdversarialLoss(criterion="least_squares")
        out = model(up, real)
        pix = pixel_loss(out["fake"], real, self.options.ssim_weight)
        g_adv = adv(out["d_fake_for_generator"], target_is_real=True, for_discriminator=False)
        g_loss = pix + self.options.adv_weight * g_adv
        d_loss = 0.5 * (adv(out["d_real"], target_is_real=True, for_discriminator=True)
                        + adv(out["d_fake"], target_is_real=False, for_discriminator=True))
        self._last = {"generator_loss": float(g_loss.detach()), "discriminator_loss": float(d_loss.detach()),
                      "pixel_loss": float(pix.detach()), "adversarial_loss": float(g_adv.detach())}
        return g_loss + d_loss

    def step_metrics(self) -> dict[str, float]:
        return dict(self._last)

    # --- validation ------------------------------------------------------------------------------
    def _val_outputs(self, generator: Any, loader: Any, device: str) -> tuple[list[int], np.ndarray]:
        idx, outs = [], []
        for batch in loader:
            real = batch["image"].to(device)
            up = bicubic_tensor(degrade_tensor(real))
            outs.append((up + generator(up)).clamp(0, 1).cpu().numpy()[:, 0])
            idx += [int(i) for i in batch["index"]]
        return idx, np.concatenate(outs)

    def _pixel_metrics(self, idx: list[int], outs: np.ndarray) -> dict[str, float]:
        val = self._val_context["slices"]
        ps, ss, hs = [], [], []
        for i, out in zip(idx, outs):
            ref = val.images[i]
            m = brain_mask(ref)
            ps.append(psnr(ref, out, m))
            ss.append(ssim(ref, out, m))
            hs.append(hfen(ref, out, m))
        return {"val_psnr": float(np.mean(ps)), "val_ssim": float(np.mean(ss)), "val_hfen": float(np.nanmean(hs))}

    def _segmenter(self) -> tuple[Any, Any]:
        if "segmenter" not in self._val_context:
            self._val_context["segmenter"] = load_model(self.options.segmenter, device="cpu")
        return self._val_context["segmenter"]

    def _real_features(self) -> tuple[np.ndarray, dict[str, tuple[float, float]], np.ndarray]:
        """``(real segmenter input of the kept val slices, FLAIR scale per case, their real features)``."""
        if "real_x" not in self._val_context:
            val, keep = self._val_context["slices"], self._val_context["keep"]
            root = self.data_path or default_root()
            xs, scales = [], {}
            for case in dict.fromkeys(val.case_ids[i] for i in keep):
                stack, _ = load_case(root, case)
                scales[case] = flair_scale(stack)
                full = segmenter_input(stack)
                xs += [full[val.slices[i]] for i in keep if val.case_ids[i] == case]
            self._val_context["real_x"] = np.stack(xs)
            self._val_context["scales"] = scales
            self._val_context["real_f"] = encoder_features(self._segmenter()[0], self._val_context["real_x"])
        return self._val_context["real_x"], self._val_context["scales"], self._val_context["real_f"]

    def _fid(self, idx: list[int], outs: np.ndarray) -> float:
        val = self._val_context["slices"]
        real_x, scales, real_f = self._real_features()
        order = {i: k for k, i in enumerate(self._val_context["keep"])}
        xs = []
        for i, out in zip(idx, outs):
            lo, hi = scales[val.case_ids[i]]
            xs.append(fixed_scale_input(real_x[order[i]][None], out[None], val.maxima[i:i + 1], lo, hi)[0])
        return frechet_distance(encoder_features(self._segmenter()[0], np.stack(xs)), real_f)

    def _twin_metrics(self, loader: Any, device: str) -> dict[str, float]:
        """B's validation HFEN and Fréchet distance (the start weights), computed once."""
        if self._twin_val is None:
            twin = self._generator().to(device).eval()
            idx, outs = self._val_outputs(twin, loader, device)
            self._twin_val = {**self._pixel_metrics(idx, outs), "val_fid": self._fid(idx, outs)}
        return self._twin_val

    def validate(self, model: Any, loader: Any, device: str) -> dict[str, float]:
        idx, outs = self._val_outputs(self.generator_of(model), loader, device)
        metrics = self._pixel_metrics(idx, outs)
        if self.options.mode == "gan":
            metrics["val_fid"] = self._fid(idx, outs)
            twin = self._twin_metrics(loader, device)
            metrics["val_gan_score"] = metrics["val_hfen"] / twin["val_hfen"] + metrics["val_fid"] / twin["val_fid"]
            metrics["val_twin_psnr"], metrics["val_twin_hfen"], metrics["val_twin_fid"] = (
                twin["val_psnr"], twin["val_hfen"], twin["val_fid"])
        return metrics

    # --- export ----------------------------------------------------------------------------------
    def export(self, model: Any, out_dir: Path, name: str, metrics: dict[str, Any], command: str) -> dict[str, Any]:
        a = self.options
        save_state_dict(self.generator_of(model), out_dir / f"{name}.safetensors", half=True)
        entry: dict[str, Any] = {
            "name": name, "task": self.name, "mode": a.mode, "scale": SCALE, "degradation": "area",
            "residual": True, "segmenter": a.segmenter,
            "dataset": "lgg_flair_mri_seg (FLAIR channel)", "file": f"{name}.safetensors", "card": f"{name}.md",
            "arch": self.arch(),
            "selection_rule": card.SELECTION_RULES[a.mode],
            "training": {"command": command, "init_note": a.init_note, "crop": a.crop,
                         "ssim_weight": a.ssim_weight, **({"adv_weight": a.adv_weight,
                                                           "disc_channels": a.disc_channels,
                                                           "disc_layers": a.disc_layers,
                                                           "disc_lr_factor": a.disc_lr_factor}
                                                          if a.mode == "gan" else {}), **metrics}}
        if a.mode == "gan":
            entry["twin"] = a.twin or None
        spec = SuperResSpec.from_entry(entry)  # an entry that would not parse is never written
        (out_dir / f"{name}.md").write_text(card.render_card(spec, card.read_results(out_dir / f"{name}.results.json")))
        return entry
