"""2D image classification (MedMNIST ``.npz`` or class folders) for the training engine.

Example:
    python -m medviz.train --task classification --dataset breastmnist --epochs 60 \\
        --out weights --register --name breast_resnet
"""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medviz.classification import kermany
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
from medviz.classification.kermany_card import cxr_model_card, entry_fields
from medviz.classification.kermany_eval import binary_report, evaluate_cxr, youden_threshold
from medviz.classification.metrics import bootstrap_ci, classification_metrics
from medviz.classification.preprocess import preprocess_batch
from medviz.constants import Task
from medviz.models.nets import build_network
from medviz.models.specs import ClassifierSpec
from medviz.models.weights import load_member_runs, save_weights
from medviz.options import option
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
    # radiograph-sized inputs (224 px): the standard 7x7 stride-2 stem + max pool, so layer1 runs at
    # 56x56 and layer3 (the CAM layer) at 14x14; the 28-px presets above keep full resolution instead.
    "resnet18-half-224": {"name": "ResNet", "layers": [2, 2, 2, 2], "planes": [32, 64, 128, 256], "cam": "layer3",
                          "stem": "imagenet"},
}


def arch_spec(arch: str, channels: int, n_classes: int) -> dict[str, Any]:
    """The manifest ``arch`` entry of a preset (MONAI network name + kwargs)."""
    p = ARCHS[arch]
    if p["name"] == "ResNet":
        big = p.get("stem") == "imagenet"
        kwargs = {"block": "basic", "layers": p["layers"], "block_inplanes": p["planes"], "spatial_dims": 2,
                  "n_input_channels": channels, "num_classes": n_classes, "conv1_t_size": 7 if big else 3,
                  "conv1_t_stride": 2 if big else 1, "no_max_pool": not big}
    else:
        kwargs = {"spatial_dims": 2, "in_channels": channels, "out_channels": n_classes}
    return {"name": p["name"], "kwargs": kwargs}


@dataclass(frozen=True)
class ClassificationTrainOptions:
    """Options of the classification task (``python -m medviz.train --task classification ...``)."""

    dataset: str = option("pneumoniamnist", label="Data set", choices=[*DATASETS, kermany.KEY, "folder"],
                          help="MedMNIST set, 'kermany_cxr' for the labels.csv chest X-ray layout (patient-level "
                               "val split of train/), or 'folder' for <data>/<class>/*.png (folder or zip)")
    arch: str = option("resnet18-half", label="Network", choices=list(ARCHS))
    image_size: int = option(28, label="Input size (pixels)", min=8, max=1024, help="model input side in pixels")
    class_weights: str = option("balanced", label="Class weights", choices=["balanced", "sqrt", "none"],
                                help="cross-entropy class weights from training counts")
    label_smoothing: float = option(0.0, label="Label smoothing", min=0.0, max=1.0)
    rotate: float = option(10.0, label="Max rotation (degrees)", min=0.0, max=180.0,
                           help="max random rotation in degrees")
    flip: str = option("h", label="Random flips", choices=["none", "h", "hv"], help="random flips")
    modality: str = option("OT", label="Modality code (folder sets)", help="folder sets: modality code of the input spec")
    download: bool = option(False, label="Download a missing MedMNIST set",
                            help="MedMNIST sets not found locally: fetch the official .npz with the optional "
                                 "medmnist package (needs internet) into MEDVIZ_MEDMNIST_DIR or ~/.medmnist")
    skip_test: bool = option(False, label="Skip the test split",
                             help="export without touching the test split (candidate runs)")
    members: list[Path] | None = option(
        None, label="Ensemble members (run folders)", metavar="RUN",
        help="no training: assemble a probability-averaging ensemble from these finished runs "
             "(run folders holding best.safetensors, same --arch and data), validate and export it; "
             "give the members' recipe flags too (e.g. --class-weights, --label-smoothing) so "
             "the model card describes how they were trained")
    members_note: str = option("", label="How the members were trained",
                               help="--members: the commands that trained the members, written into the model card")


class ClassificationTask(TrainTask):
    """MONAI classifier with weighted cross-entropy, selected on validation AUC.

    ``val_select`` = val AUC - 1e-4 x min(val NLL, 10): AUC decides; the tiny NLL term only breaks
    ties (e.g. several epochs at AUC 1.0), preferring the better-fitted epoch.
    """

    name = Task.CLASSIFICATION
    monitor = "val_select"
    mode = "max"

    Options = ClassificationTrainOptions

    def __init__(self, options: ClassificationTrainOptions | None = None, **kwargs: Any) -> None:
        super().__init__(options, **kwargs)
        self.size = int(self.options.image_size)
        self.arch_name = self.options.arch
        self.info: DatasetInfo | None = None
        self.classes: list[str] = []
        self.channels = 1
        self.arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.source = ""
        self.loss_fn = None

    # ---- data -------------------------------------------------------------------------------
    def _load(self) -> None:
        a = self.options
        if a.dataset == "folder":
            if self.data_path is None:
                raise DataError("--dataset folder needs --data <folder or zip of class folders>")
            self.channels = 3 if a.modality.upper() in {"OP", "XC", "SM", "ES"} else 1
            splits, self.classes = load_image_folder(self.data_path, self.channels, seed=self.seed)
            self.arrays = {s: (preprocess_batch(im, self.channels, self.size), y) for s, (im, y) in splits.items()}
            self.source = f"class folders at {self.data_path.name}"
            return
        if a.dataset == kermany.KEY:
            self.classes, self.channels = list(kermany.CLASSES), 1
            root = kermany.data_root(self.data_path)
            for split in ("train", "val"):
                part = kermany.load_split(split, self.size, root, seed=self.seed)
                self.arrays[split] = (part.x, part.y)
            self.source = f"{kermany.FOLDER} (labels.csv; val = {kermany.VAL_FRACTION:.0%} of the train patients, seed {self.seed})"
            self._kermany_root = root
            return
        self.info = look_up_dataset(a.dataset)
        self.classes, self.channels = list(self.info.classes), self.info.channels
        try:
            path = resolve_npz(self.info, self.data_path)
            self.source = str(self.info.relpath)
        except DataError as e:
            if not a.download:
                raise DataError(f"{e}; or pass --download to fetch it with the medmnist package") from e
            path = download_npz(self.info)
            self.source = f"{path.name} (official file, downloaded by the medmnist package)"
        for split in ("train", "val"):
            images, labels = load_npz_split(path, split)
            self.arrays[split] = (preprocess_batch(images, self.channels, self.size), labels)
        self._npz = path

    def split(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Preprocessed ``(N, C, S, S)`` images and ``(N,)`` labels of one split (test loaded on demand)."""
        if split not in self.arrays and self.options.dataset == kermany.KEY:
            part = kermany.load_split(split, self.size, self._kermany_root, seed=self.seed)
            self.arrays[split] = (part.x, part.y)
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

        a, b, dev = self.options, x.shape[0], x.device
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
        if self.options.class_weights == "none" or (counts == 0).any():
            w = np.ones(k)
        else:
            w = counts.sum() / (k * counts)
            w = np.sqrt(w) if self.options.class_weights == "sqrt" else w
        self.loss_fn = torch.nn.CrossEntropyLoss(weight=torch.tensor(w, dtype=torch.float32),
                                                 label_smoothing=self.options.label_smoothing)
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
        members = self.options.members
        return {"name": "Ensemble", "kwargs": {"members": [single] * len(members)}} if members else single

    def cam_layer(self) -> str:
        cam = ARCHS[self.arch_name]["cam"]
        members = self.options.members
        return ",".join(f"members.{i}.{cam}" for i in range(len(members))) if members else cam

    def build_model(self) -> Any:
        return build_network(self.arch())

    def assembled_result(self) -> Any:
        """``--members``: the ensemble of the members' selected weights, validated once on val, as a
        :class:`~medviz.train.engine.TrainResult` for export (None without ``--members``)."""
        members = self.options.members
        if not members:
            return None
        import torch
        from monai.data import DataLoader

        data = self.build_data()
        model = self.build_model()
        load_member_runs(model, members)
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
        """Decide fp16 on val, fit the temperature on val, evaluate test once, write the weights, build the
        manifest entry and write the card: one step each."""
        model = model.cpu().eval()
        shipped, use_half, fp16_check, zv = self._choose_precision(model)
        yv = self.arrays["val"][1]
        temperature = fit_temperature(zv, yv)
        val = {**classification_metrics(softmax(zv, temperature), yv), "n": int(len(yv)),
               "nll": nll(zv, yv), "nll_calibrated": nll(zv, yv, temperature),
               "ece": expected_calibration_error(softmax(zv), yv),
               "ece_calibrated": expected_calibration_error(softmax(zv, temperature), yv)}
        out_dir = Path(out_dir)
        if self.options.dataset == kermany.KEY:
            return self._export_cxr(shipped, out_dir, name, temperature, use_half, fp16_check, zv, val,
                                    metrics, command)
        test = self._score_test(shipped, temperature)
        files = save_weights(shipped, out_dir, name, half=use_half)
        entry = self._manifest_entry(name, files, temperature, use_half, fp16_check,
                                     {"val": val, "test": test, "selection": metrics}, command)
        # the card is rendered from the parsed spec, so an entry that would not parse is never written
        (out_dir / f"{name}.md").write_text(model_card(ClassifierSpec.from_entry(entry)))
        return entry

    def _export_cxr(self, shipped: Any, out_dir: Path, name: str, temperature: float, use_half: bool,
                    fp16_check: dict[str, float], zv: np.ndarray, val: dict[str, Any], metrics: dict[str, Any],
                    command: str) -> dict[str, Any]:
        """Kermany layout: the operating threshold on val (Youden), the evaluate contract on val and the
        official val, then the one test look (:func:`~medviz.classification.kermany_eval.evaluate_cxr`,
        with the 28-px comparison) unless ``skip_test``."""
        yv = self.arrays["val"][1]
        threshold = youden_threshold(softmax(zv, temperature)[:, 1], yv)
        val = {**val, **binary_report(softmax(zv, temperature)[:, 1], yv, threshold)}
        files = save_weights(shipped, out_dir, name, half=use_half)
        record: dict[str, Any] = {"val": val, "test": None, "selection": metrics}
        entry = self._manifest_entry(name, files, temperature, use_half, fp16_check, record, command)
        entry.update(entry_fields(self.size, self.seed), operating_threshold=threshold)
        spec = ClassifierSpec.from_entry(entry)
        ov = evaluate_cxr(shipped, spec, out_dir, "official_val", self._kermany_root, compare=False)
        val["official_val"] = {k: v for k, v in ov.items() if k not in ("references", "subsets")}
        if not self.options.skip_test:
            test = evaluate_cxr(shipped, spec, out_dir, "test", self._kermany_root)
            record["test"] = {**test, "date": dt.date.today().isoformat(), "command": command}
        (out_dir / f"{name}.md").write_text(cxr_model_card(ClassifierSpec.from_entry(entry)))
        return entry

    def _choose_precision(self, model: Any) -> tuple[Any, bool, dict[str, float], np.ndarray]:
        """fp16 weights when they give the same validation result (checked, not assumed).

        Returns:
            ``(the model as shipped, fp16 used, the fp16 check record, val logits of the shipped model)``.
        """
        xv, yv = self.arrays["val"]
        zv = batch_logits(model, xv)
        half = copy.deepcopy(model).half().float().eval()
        zh = batch_logits(half, xv)
        m32, m16 = classification_metrics(softmax(zv), yv), classification_metrics(softmax(zh), yv)
        use_half = bool(abs(m32["auc"] - m16["auc"]) <= 2e-3 and abs(m32["acc"] - m16["acc"]) <= 1e-9)
        check = {"val_auc_fp32": m32["auc"], "val_auc_fp16": m16["auc"], "val_acc_fp32": m32["acc"],
                 "val_acc_fp16": m16["acc"]}
        return (half, True, check, zh) if use_half else (model, False, check, zv)

    def _score_test(self, shipped: Any, temperature: float) -> dict[str, Any] | None:
        """The one test evaluation (None with ``skip_test`` or without a test split)."""
        if self.options.skip_test or not (self.info is not None or "test" in self.arrays):
            return None
        xt, yt = self.split("test")
        if not len(yt):
            return None
        zt = batch_logits(shipped, xt)
        p = softmax(zt, temperature)
        return {**classification_metrics(p, yt), "n": int(len(yt)), "ci95": bootstrap_ci(p, yt),
                "ece": expected_calibration_error(softmax(zt), yt), "ece_calibrated": expected_calibration_error(p, yt)}

    def _manifest_entry(self, name: str, files: list[str], temperature: float, use_half: bool,
                        fp16_check: dict[str, float], metrics: dict[str, Any], command: str) -> dict[str, Any]:
        info = self.info
        entry: dict[str, Any] = {
            "name": name, "task": self.name, "file": files[0], **({"shards": [{"file": f} for f in files]} if len(files) > 1 else {}),
            "card": f"{name}.md",
            "dataset": info.title if info else self.source, "dataset_key": info.key if info else "folder",
            "arch": self.arch(), "arch_preset": self.arch_name, "classes": self.classes,
            "input": {"channels": self.channels, "size": self.size, "native_size": 28 if info else None,
                      "modality": info.modality if info else self.options.modality.upper(),
                      "modality_label": info.modality_label if info else self.options.modality.upper(),
                      "intensity_range": [0, 255], "bit_depth": 8, "aspect": 1.0},
            "preprocessing": {"function": "medviz.classification.preprocess.preprocess_image",
                              "steps": ["8-bit intensities / 255 -> [0, 1] (other data: window or min-max first)",
                                        "colour <-> grey to match channels", "centre crop to square",
                                        f"resize to {self.size}x{self.size} (area / bilinear)"]},
            "loss": {"class_weights": self.options.class_weights, "label_smoothing": self.options.label_smoothing},
            "cam_layer": self.cam_layer(), "temperature": temperature,
            **({"members": [str(m) for m in self.options.members], "members_note": self.options.members_note}
               if self.options.members else {}),
            "weights_dtype": "float16" if use_half else "float32",
            "fp16_check": fp16_check,
            "metrics": metrics,
            "references": [dict(r) for r in info.references] if info else [],
            "data": {"source": info.source if info else self.source, "file": self.source,
                     "license": info.license if info else "see data set"},
            "command": command, "created": dt.date.today().isoformat(),
        }
        return entry
