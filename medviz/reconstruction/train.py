"""Reconstruction task: accelerated single-coil MRI reconstruction or Rician denoising of FLAIR slices.

``--mode recon`` trains a MONAI ``ComplexUnet`` on the complex zero-filled image of randomly
undersampled k-space (MONAI random/equispaced masks, accelerations from ``--accelerations``), with a
residual connection and a data-consistency step (:func:`medviz.reconstruction.infer.recon_forward`).
``--mode denoise`` trains a MONAI ``BasicUNet`` (batch norm, zero-initialised output layer) to remove Rician noise whose sigma is drawn uniformly in
``[0, --max-sigma]`` (a fraction of the slice maximum), residually (:func:`medviz.reconstruction.infer.denoise`).
Both select on validation PSNR (val patients, brain slices, fixed masks / noise seeds).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medviz.constants import Task
from medviz.models.nets import build_network
from medviz.models.specs import ReconSpec
from medviz.models.weights import save_state_dict
from medviz.options import option
from medviz.reconstruction.card import read_results, render_card
from medviz.reconstruction.data import load_flair_slices
from medviz.reconstruction.infer import recon_forward
from medviz.reconstruction.kspace import MASK_TYPES, add_rician_noise, make_mask, to_image, to_kspace, undersample
from medviz.reconstruction.metrics import is_brain_slice, nmse, psnr, ssim
from medviz.train.task import TaskData, TrainTask, init_note_option, init_option

VAL_NOISE_LEVELS = (0.02, 0.05, 0.10)


def _mask_transform():
    """A MONAI randomizable dict transform adding ``mask`` ``(1, 1, W, 1)`` to each sample."""
    from monai.transforms import MapTransform, Randomizable

    class RandKspaceMaskd(Randomizable, MapTransform):
        def __init__(self, accelerations: tuple[float, ...]) -> None:
            MapTransform.__init__(self, keys=["image"])
            self.accelerations = accelerations

        def randomize(self, data: Any = None) -> None:
            self._kind = MASK_TYPES[self.R.randint(len(MASK_TYPES))]
            self._acc = self.accelerations[self.R.randint(len(self.accelerations))]
            self._seed = int(self.R.randint(2**31 - 1))

        def __call__(self, data: dict[str, Any]) -> dict[str, Any]:
            self.randomize()
            d = dict(data)
            w = d["image"].shape[-1]
            m = make_mask(w, self._kind, self._acc, seed=self._seed)
            d["mask"] = np.asarray(m, np.float32).reshape(1, 1, w, 1)
            return d

    return RandKspaceMaskd


@dataclass(frozen=True)
class ReconstructionTrainOptions:
    """Options of the reconstruction task (``python -m medviz.train --task reconstruction ...``)."""

    mode: str = option("recon", label="Mode", choices=["recon", "denoise"],
                       help="recon: accelerated k-space reconstruction; denoise: Rician denoising")
    accelerations: list[float] = option(default_factory=lambda: [4.0, 8.0], label="Accelerations (recon)", min=1.0,
                                        help="recon: accelerations drawn per training sample")
    max_sigma: float = option(0.12, label="Max noise sigma (denoise)", min=0.0, max=1.0,
                              help="denoise: Rician sigma drawn in [0, max] (fraction of the slice maximum)")
    crop: tuple[int, int] | None = option(None, label="Training crop H W (pixels)", min=8, metavar=("H", "W"),
                                          help="random training crop (recon: keep W whole so the aliasing geometry "
                                               "is kept)")
    features: list[int] | None = option(None, label="Network widths", min=1,
                                        help="network widths (6 values: ComplexUnet / BasicUNet features)")
    cascades: int = option(1, label="Unrolled cascades (recon)", min=1, max=64,
                           help="recon: unrolled iterations x <- DC(x + f(x)) with one shared network")
    init: Path | None = init_option()
    init_note: str = init_note_option()
    val_limit: int = option(0, label="Max validation slices (0: all)", min=0,
                            help="use every k-th val slice so at most N remain (0: all)")


class ReconstructionTask(TrainTask):
    name = Task.RECONSTRUCTION
    monitor = "val_psnr"
    mode = "max"
    channels_last = False

    Options = ReconstructionTrainOptions

    # --- data ------------------------------------------------------------------------------------
    def build_data(self) -> TaskData:
        from monai.data import Dataset
        from monai.transforms import (
            Compose,
            CopyItemsd,
            RandFlipd,
            RandRicianNoised,
            RandSpatialCropd,
        )

        a = self.options
        root = self.data_path
        train = load_flair_slices(root, "train")
        val = load_flair_slices(root, "val")
        # recon trains on brain slices only (the evaluation rule); the denoiser also sees background
        train_items = [{"image": x[None]} for x in train.images if a.mode == "denoise" or is_brain_slice(x)]
        keep = [i for i, x in enumerate(val.images) if is_brain_slice(x)]
        if a.val_limit and len(keep) > a.val_limit:
            keep = keep[:: int(np.ceil(len(keep) / a.val_limit))]
        aug: list[Any] = [RandFlipd(keys=["image"], prob=0.5, spatial_axis=1)]
        if a.crop:
            aug.insert(0, RandSpatialCropd(keys=["image"], roi_size=tuple(a.crop), random_size=False))
        val_items = []
        if a.mode == "recon":
            aug.append(_mask_transform()(tuple(a.accelerations)))
            for j, i in enumerate(keep):
                x = val.images[i]
                m = make_mask(x.shape[-1], ("random", "equispaced")[j % 2], 4, seed=10_000 + j)
                val_items.append({"image": x[None], "mask": m.reshape(1, 1, -1, 1)})
        else:
            aug += [CopyItemsd(keys=["image"], names=["noisy"]),
                    RandRicianNoised(keys=["noisy"], prob=1.0, std=a.max_sigma, sample_std=True)]
            for j, i in enumerate(keep):
                x = val.images[i]
                s = VAL_NOISE_LEVELS[j % len(VAL_NOISE_LEVELS)]
                val_items.append({"image": x[None], "noisy": add_rician_noise(x, s, seed=10_000 + j)[None]})
        summary = {"mode": a.mode, "train_slices": len(train_items), "train_cases": len(set(train.case_ids)),
                   "val_slices": len(val_items), "val_cases": len(set(val.case_ids)),
                   "size": list(train.images.shape[1:]), "crop": a.crop}
        return TaskData(Dataset(train_items, transform=Compose(aug)), Dataset(val_items), summary)

    # --- model -----------------------------------------------------------------------------------
    def arch(self) -> dict[str, Any]:
        f = self.options.features
        if self.options.mode == "recon":
            feats = list(f) if f else [16, 32, 64, 128, 256, 16]
            return {"name": "ComplexUnet", "kwargs": {"spatial_dims": 2, "features": feats}}
        feats = list(f) if f else [16, 32, 64, 128, 256, 16]
        return {"name": "BasicUNet", "kwargs": {"spatial_dims": 2, "in_channels": 1, "out_channels": 1,
                                                "features": feats, "norm": "batch"}}

    def build_model(self) -> Any:
        import torch

        model = build_network(self.arch())
        if not self.load_init(model) and self.options.mode == "denoise":  # residual y + f(y): start from the identity (f = 0)
            torch.nn.init.zeros_(model.final_conv.weight)
            torch.nn.init.zeros_(model.final_conv.bias)
        return model

    def _predict(self, model: Any, batch: dict[str, Any]) -> Any:
        if self.options.mode == "denoise":
            y = batch["noisy"]
            return y + model(y)
        x = batch["image"][:, 0]  # (B, H, W)
        m = batch["mask"]  # (B, 1, 1, W, 1)
        k_us = undersample(to_kspace(x)[:, None], m)
        return recon_forward(model, to_image(k_us), k_us, m, self.options.cascades)

    def training_loss(self, model: Any, batch: dict[str, Any]) -> Any:
        import torch.nn.functional as F
        from monai.losses import SSIMLoss

        pred = self._predict(model, batch)
        target = batch["image"]
        return F.l1_loss(pred, target) + 0.2 * SSIMLoss(spatial_dims=2, data_range=1.0)(pred, target)

    def validate(self, model: Any, loader: Any, device: str) -> dict[str, float]:
        ps, ss, ns = [], [], []
        for batch in loader:
            batch = {k: v.to(device) for k, v in batch.items()}
            pred = self._predict(model, batch).cpu().numpy()
            ref = batch["image"].cpu().numpy()
            for p, r in zip(pred[:, 0], ref[:, 0]):
                ps.append(psnr(r, p))
                ss.append(ssim(r, p))
                ns.append(nmse(r, p))
        return {"val_psnr": float(np.mean(ps)), "val_ssim": float(np.mean(ss)), "val_nmse": float(np.mean(ns))}

    # --- export ----------------------------------------------------------------------------------
    def export(self, model: Any, out_dir: Path, name: str, metrics: dict[str, Any], command: str) -> dict[str, Any]:
        save_state_dict(model, out_dir / f"{name}.safetensors", half=True)
        a = self.options
        entry = {"name": name, "task": self.name, "mode": a.mode, "dataset": "lgg_flair_mri_seg (FLAIR channel)",
                 "file": f"{name}.safetensors", "card": f"{name}.md", "arch": self.arch(),
                 "input": {"size": [256, 256], "intensity": "slice / slice max, [0, 1]"},
                 "residual": True, "crop": list(a.crop) if a.crop else None,
                 "training": {"command": command, "init_note": a.init_note, **metrics}}
        if a.mode == "recon":
            entry["accelerations"] = list(a.accelerations)
            entry["data_consistency"] = True
            entry["cascades"] = int(a.cascades)
        else:
            entry["noise"] = {"type": "rician", "max_sigma": a.max_sigma}
        # the card is rendered from the parsed spec, so an entry that would not parse is never written
        (out_dir / f"{name}.md").write_text(render_card(ReconSpec.from_entry(entry),
                                                        read_results(out_dir / f"{name}.results.json")))
        return entry


# --- model card --------------------------------------------------------------------------------


