"""2D image classification (MedMNIST ``.npz`` or class folders) for the training engine.

Example:
    python -m medviz.train --task classification --dataset breastmnist --epochs 60 \\
        --out weights --register --name breast_resnet
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np

from medviz.classification.calibration import expected_calibration_error, fit_temperature, nll, softmax
from medviz.classification.card import model_card
from medviz.classification.data import (
    DATASETS,
    DataError,
    DatasetInfo,
    download_npz,
    load_image_folder,
    load_npz_split,
    look_up_dataset,
    resolve_npz,
)
from medviz.classification.infer import batch_logits
from medviz.classification.metrics import bootstrap_ci, classification_metrics
from medviz.classification.preprocess import preprocess_batch
from medviz.models.nets import build_network
from medviz.models.weights import load_state_dict, save_weights
from medviz.train.engine import TrainResult
from medviz.train.task import TaskData, TrainTask

#: ``--arch`` presets: manifest network name, kwargs builder and Grad-CAM layer. ResNets explain
#: ``layer3`` (7x7 at a 28-px input; ``layer4`` is only 4x4, too coarse to localise anything).
ARCHS: dict[str, dict[str, Any]] = {
    "resnet18-half": {"name": "ResNet", "layers": [2, 2, 2, 2], "planes": [32, 64, 128, 256], "cam": "layer3"},
    "resnet18": {"name": "ResNet", "layers": [2, 2, 2, 2], "planes": [64, 128, 256, 512], "cam": "layer3"},
    "resnet10-half": {"name": "ResNet", "layers": [1, 1, 1, 1], "planes": [32, 64, 128, 256], "cam": "layer3"},
    "resnet10-tiny": {"name": "ResNet", "layers": [1, 1, 1, 1], "planes": [8, 16, 32, 64], "cam": "layer3"},
    "densenet121": {"name": "DenseNet121", "cam": "class_layers.relu"},
}


def arch_spec(arch: str, channels: int, n_classes: int) -> dict[str, Any]:
    """The manifest ``arch`` entry of a preset (MONAI network name + kwargs)."""
    p = ARCHS[arch]
    if p["name"] == "ResNet":
        kwargs = {"block": "basic", "layers": p["layers"], "block_inplanes": p["planes"], "spatial_dims": 2,
                  "n_input_channels": channels, "num_classes": n_classes, "conv1_t_size": 3,
                  "conv1_t_stride": 1, "no_max_pool": True}
    else:
        kwargs = {"spatial_dims": 2, "in_channels": channels, "out_channels": n_classes}
    return {"name": p["name"], "kwargs": kwargs}


class ClassificationTask(TrainTask):
    """MONAI classifier with weighted cross-entropy, selected on validation AUC.

    ``val_select`` = val AUC - 1e-4 x min(val NLL, 10): AUC decides; the tiny NLL term only breaks
    ties (e.g. several epochs at AUC 1.0), preferring the better-fitted epoch.
    """

    name = "classification"
    monitor = "val_select"
    mode = "max"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--dataset", default="pneumoniamnist", choices=[*DATASETS, "folder"],
                            help="MedMNIST set, or 'folder' for <data>/<class>/*.png (folder or zip)")
        parser.add_argument("--arch", default="resnet18-half", choices=list(ARCHS))
        parser.add_argument("--image-size", type=int, default=28, help="model input side in pixels")
        parser.add_argument("--class-weights", default="balanced", choices=["balanced", "sqrt", "none"],
                            help="cross-entropy class weights from training counts")
        parser.add_argument("--label-smoothing", type=float, default=0.0)
        parser.add_argument("--rotate", type=float, default=10.0, help="max random rotation in degrees")
        parser.add_argument("--flip", default="h", choices=["none", "h", "hv"], help="random flips")
        parser.add_argument("--modality", default="OT", help="folder sets: modality code of the input spec")
        parser.add_argument("--download", action="store_true",
                            help="MedMNIST sets not found locally: fetch the official .npz with the optional "
                                 "medmnist package (needs internet) into MEDVIZ_MEDMNIST_DIR or ~/.medmnist")
        parser.add_argument("--skip-test", action="store_true",
                            help="export without touching the test split (candidate runs)")
        parser.add_argument("--members", type=Path, nargs="+", default=None, metavar="RUN",
                            help="no training: assemble a probability-averaging ensemble from these finished runs "
                                 "(run folders holding best.safetensors, same --arch and data), validate and export it; "
                                 "give the members' recipe flags too (e.g. --class-weights, --label-smoothing) so "
                                 "the model card describes how they were trained")
        parser.add_argument("--members-note", default="",
                            help="--members: the commands that trained the members, written into the model card")

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args)
        self.size = int(getattr(args, "image_size", 28))
        self.arch_name = getattr(args, "arch", "resnet18-half")
        self.info: DatasetInfo | None = None
        self.classes: list[str] = []
        self.channels = 1
        self.arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.source = ""
        self.loss_fn = None

    # ---- data -------------------------------------------------------------------------------
    def _load(self) -> None:
        a = self.args
        if a.dataset == "folder":
            if a.data is None:
                raise DataError("--dataset folder needs --data <folder or zip of class folders>")
            self.channels = 3 if a.modality.upper() in {"OP", "XC", "SM", "ES"} else 1
            splits, self.classes = load_image_folder(Path(a.data), self.channels, seed=getattr(a, "seed", 0))
            self.arrays = {s: (preprocess_batch(im, self.channels, self.size), y) for s, (im, y) in splits.items()}
            self.source = f"class folders at {Path(a.data).name}"
            return
        self.info = look_up_dataset(a.dataset)
        self.classes, self.channels = list(self.info.classes), self.info.channels
        try:
            path = resolve_npz(self.info, a.data)
            self.source = str(self.info.relpath)
        except DataError as e:
            if not getattr(a, "download", False):
                raise DataError(f"{e}; or pass --download to fetch it with the medmnist package") from e
            path = download_npz(self.info)
            self.source = f"{path.name} (official file, downloaded by the medmnist package)"
        for split in ("train", "val"):
            images, labels = load_npz_split(path, split)
            self.arrays[split] = (preprocess_batch(images, self.channels, self.size), labels)
        self._npz = path

    def split(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Preprocessed ``(N, C, S, S)`` images and ``(N,)`` labels of one split (test loaded on demand)."""
        if split not in self.arrays:
            images, labels = load_npz_split(self._npz, split)
            self.arrays[split] = (preprocess_batch(images, self.channels, self.size), labels)
        return self.arrays[split]

    def augment(self, x: Any) -> Any:
        """Random augmentation of a training batch ``(B, C, S, S)`` in [0, 1], on its device.

        Batched (per-sample parameters) because per-sample MONAI dict transforms cost ~10 ms per
        28-px image on CPU, mostly MetaTensor bookkeeping. Affine warps use MONAI's
        ``AffineTransform`` layer; parameters come from the torch RNG the engine seeds per epoch.
        Rotation +-``--rotate`` degrees, scale 0.9..1.1, shift +-8 %, flips, gamma 0.8..1.25
        (30 %), Gaussian noise sigma 0.02 (20 %).
        """
        import torch
        from monai.networks.layers import AffineTransform

        a, b, dev = self.args, x.shape[0], x.device
        u = lambda *shape: torch.rand(*shape, device=dev) * 2 - 1  # noqa: E731
        on = (torch.rand(b, device=dev) < 0.8).float()
        ang = u(b) * np.deg2rad(a.rotate) * on
        scale = 1 + u(b, 2) * 0.1 * on[:, None]
        shift = u(b, 2) * 0.16 * on[:, None]
        cos, sin = torch.cos(ang), torch.sin(ang)
        theta = torch.stack([torch.stack([scale[:, 0] * cos, -scale[:, 0] * sin, shift[:, 0]], 1),
                             torch.stack([scale[:, 1] * sin, scale[:, 1] * cos, shift[:, 1]], 1)], 1)
        x = AffineTransform(normalized=True, padding_mode="zeros", align_corners=False,
                            reverse_indexing=False)(x, theta)
        for axis, enabled in ((-1, a.flip in ("h", "hv")), (-2, a.flip == "hv")):
            if enabled:
                x = torch.where((torch.rand(b, 1, 1, 1, device=dev) < 0.5), x.flip(axis), x)
        gamma = torch.where(torch.rand(b, device=dev) < 0.3, 1.25 ** u(b), torch.ones(b, device=dev))
        x = x.clamp(0, 1) ** gamma[:, None, None, None]
        noise = (torch.rand(b, 1, 1, 1, device=dev) < 0.2).float() * 0.02
        return x + noise * torch.randn_like(x)

    def build_data(self) -> TaskData:
        import torch
        from monai.data import Dataset

        self._load()
        (xt, yt), (xv, yv) = self.arrays["train"], self.arrays["val"]
        k = len(self.classes)
        if yt.min() < 0 or yt.max() >= k or yv.min() < 0 or yv.max() >= k:
            raise DataError(f"labels outside 0..{k - 1}")
        counts = np.bincount(yt, minlength=k).astype(np.float64)
        if self.args.class_weights == "none" or (counts == 0).any():
            w = np.ones(k)
        else:
            w = counts.sum() / (k * counts)
            w = np.sqrt(w) if self.args.class_weights == "sqrt" else w
        self.loss_fn = torch.nn.CrossEntropyLoss(weight=torch.tensor(w, dtype=torch.float32),
                                                 label_smoothing=self.args.label_smoothing)
        train = Dataset([{"image": x, "label": int(y)} for x, y in zip(xt, yt)])
        val = Dataset([{"image": x, "label": int(y)} for x, y in zip(xv, yv)])
        summary = {"dataset": self.info.title if self.info else self.source, "classes": self.classes,
                   "input": [self.channels, self.size, self.size],
                   "counts": {s: np.bincount(y, minlength=k).tolist() for s, (_, y) in self.arrays.items()},
                   "class_weights": [round(float(v), 4) for v in w]}
        return TaskData(train=train, val=val, summary=summary)

    # ---- model ------------------------------------------------------------------------------
    def arch(self) -> dict[str, Any]:
        single = arch_spec(self.arch_name, self.channels, len(self.classes))
        members = getattr(self.args, "members", None)
        return {"name": "Ensemble", "kwargs": {"members": [single] * len(members)}} if members else single

    def cam_layer(self) -> str:
        cam = ARCHS[self.arch_name]["cam"]
        members = getattr(self.args, "members", None)
        return ",".join(f"members.{i}.{cam}" for i in range(len(members))) if members else cam

    def build_model(self) -> Any:
        return build_network(self.arch())

    def assembled_result(self) -> Any:
        """``--members``: the ensemble of the members' selected weights, validated once on val, as a
        :class:`~medviz.train.engine.TrainResult` for export (None without ``--members``)."""
        members = getattr(self.args, "members", None)
        if not members:
            return None
        import torch
        from monai.data import DataLoader

        data = self.build_data()
        model = self.build_model()
        for i, run in enumerate(members):
            path = Path(run) / "best.safetensors" if Path(run).is_dir() else Path(run)
            if not path.is_file():
                raise DataError(f"ensemble member {run}: no best.safetensors (is it a finished run folder?)")
            model.members[i].load_state_dict(load_state_dict(path), strict=True)
        model.eval()
        with torch.inference_mode():
            metrics = self.validate(model, DataLoader(data.val, batch_size=256), "cpu")
        history = [{"epoch": 1, "assembled_from": [str(m) for m in members], **metrics}]
        return TrainResult(status="assembled", model=model, best_epoch=1, best_metric=metrics[self.monitor],
                           monitor=self.monitor, history=history)

    def training_loss(self, model: Any, batch: dict[str, Any]) -> Any:
        self.loss_fn = self.loss_fn.to(batch["image"].device)
        return self.loss_fn(model(self.augment(batch["image"].float())), batch["label"].long())

    def validate(self, model: Any, loader: Any, device: str) -> dict[str, float]:
        logits, labels = [], []
        for batch in loader:
            logits.append(model(batch["image"].to(device).float()).float().cpu().numpy())
            labels.append(batch["label"].cpu().numpy())
        z, y = np.concatenate(logits).astype(np.float64), np.concatenate(labels).astype(np.int64)
        m = classification_metrics(softmax(z), y)
        loss = nll(z, y)
        return {"val_select": m["auc"] - 1e-4 * min(loss, 10.0), "val_auc": m["auc"], "val_acc": m["acc"], "val_loss": loss,
                "val_ece": expected_calibration_error(softmax(z), y)}

    # ---- export -----------------------------------------------------------------------------
    def export(self, model: Any, out_dir: Path, name: str, metrics: dict[str, Any], command: str) -> dict[str, Any]:
        model = model.cpu().eval()
        xv, yv = self.arrays["val"]
        zv = batch_logits(model, xv)
        # fp16 weights when they give the same validation result (checked, not assumed).
        half = copy.deepcopy(model).half().float().eval()
        zh = batch_logits(half, xv)
        m32, m16 = classification_metrics(softmax(zv), yv), classification_metrics(softmax(zh), yv)
        use_half = bool(abs(m32["auc"] - m16["auc"]) <= 2e-3 and abs(m32["acc"] - m16["acc"]) <= 1e-9)
        shipped = half if use_half else model
        zv = zh if use_half else zv
        temperature = fit_temperature(zv, yv)
        val = {**classification_metrics(softmax(zv, temperature), yv), "n": int(len(yv)),
               "nll": nll(zv, yv), "nll_calibrated": nll(zv, yv, temperature),
               "ece": expected_calibration_error(softmax(zv), yv),
               "ece_calibrated": expected_calibration_error(softmax(zv, temperature), yv)}
        test = None
        if not getattr(self.args, "skip_test", False) and (self.info is not None or "test" in self.arrays):
            xt, yt = self.split("test")
            if len(yt):
                zt = batch_logits(shipped, xt)
                p = softmax(zt, temperature)
                test = {**classification_metrics(p, yt), "n": int(len(yt)), "ci95": bootstrap_ci(p, yt),
                        "ece": expected_calibration_error(softmax(zt), yt),
                        "ece_calibrated": expected_calibration_error(p, yt)}
        out_dir = Path(out_dir)
        files = save_weights(shipped, out_dir, name, half=use_half)
        info = self.info
        entry: dict[str, Any] = {
            "name": name, "task": self.name, "file": files[0], **({"shards": [{"file": f} for f in files]} if len(files) > 1 else {}),
            "card": f"{name}.md",
            "dataset": info.title if info else self.source, "dataset_key": info.key if info else "folder",
            "arch": self.arch(), "arch_preset": self.arch_name, "classes": self.classes,
            "input": {"channels": self.channels, "size": self.size, "native_size": 28 if info else None,
                      "modality": info.modality if info else self.args.modality.upper(),
                      "modality_label": info.modality_label if info else self.args.modality.upper(),
                      "intensity_range": [0, 255], "bit_depth": 8, "aspect": 1.0},
            "preprocessing": {"function": "medviz.classification.preprocess.preprocess_image",
                              "steps": ["8-bit intensities / 255 -> [0, 1] (other data: window or min-max first)",
                                        "colour <-> grey to match channels", "centre crop to square",
                                        f"resize to {self.size}x{self.size} (area / bilinear)"]},
            "loss": {"class_weights": self.args.class_weights, "label_smoothing": self.args.label_smoothing},
            "cam_layer": self.cam_layer(), "temperature": temperature,
            **({"members": [str(m) for m in self.args.members], "members_note": self.args.members_note}
               if getattr(self.args, "members", None) else {}),
            "weights_dtype": "float16" if use_half else "float32",
            "fp16_check": {"val_auc_fp32": m32["auc"], "val_auc_fp16": m16["auc"],
                           "val_acc_fp32": m32["acc"], "val_acc_fp16": m16["acc"]},
            "metrics": {"val": val, "test": test, "selection": metrics},
            "references": [dict(r) for r in info.references] if info else [],
            "data": {"source": info.source if info else self.source, "file": self.source,
                     "license": info.license if info else "see data set"},
            "command": command, "created": dt.date.today().isoformat(),
        }
        (out_dir / f"{name}.md").write_text(model_card(entry))
        return entry
