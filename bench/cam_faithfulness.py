"""Grad-CAM faithfulness at 224 px vs 28 px: deletion / insertion curves against a random pixel order.

    python bench/cam_faithfulness.py [--n 40] [--steps 16] [--method GradCAM] [--json] [--out bench/out]

For each model (``pneumonia_cxr224``, ``pneumonia_resnet``) and each of ``--n`` pneumonia images of the Kermany
test split (every k-th one, a fixed rule), the CAM of the class *pneumonia* ranks the model-input pixels. Deletion:
the most salient pixels are replaced, in ``--steps`` equal fractions, by a blurred copy of the image (Gaussian,
sigma = 1/16 of the side) and the calibrated pneumonia probability is recorded; its area under the curve
(fraction removed 0..1) is lower when the map is faithful. Insertion: start from the blurred image and put the
most salient pixels back; the AUC is higher when faithful. Each is compared with the same curves for a random
pixel order (seed 0). Both models get the same radiographs through their own ``prepare_input``.
Writes ``cam_faithfulness.json`` and ``cam_faithfulness.png`` (mean curves) under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from medviz.classification import kermany  # noqa: E402
from medviz.classification.calibration import softmax  # noqa: E402
from medviz.classification.infer import batch_logits  # noqa: E402
from medviz.classification.preprocess import prepare_input  # noqa: E402
from medviz.explain import classifier_target, explain  # noqa: E402
from medviz.models.weights import load_model  # noqa: E402

MODELS = ("pneumonia_cxr224", "pneumonia_resnet")
PNEUMONIA = 1


def _blur(x: np.ndarray) -> np.ndarray:
    import cv2

    s = x.shape[-1] / 16
    return np.stack([cv2.GaussianBlur(c, (0, 0), s) for c in x]).astype(np.float32)


def curves(model, spec, x: np.ndarray, order: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Pneumonia probability after deleting / inserting the first k/steps of ``order`` (flat pixel indices)."""
    base = _blur(x)
    n = order.size
    dele, ins = [], []
    for k in range(steps + 1):
        mask = np.zeros(n, dtype=bool)
        mask[order[: round(k / steps * n)]] = True
        m = mask.reshape(x.shape[1:])[None]
        dele.append(np.where(m, base, x))
        ins.append(np.where(m, x, base))
    p = softmax(batch_logits(model, np.stack(dele + ins)), spec.temperature)[:, PNEUMONIA]
    return p[: steps + 1], p[steps + 1:]


def _auc(y: np.ndarray) -> float:
    return float(np.mean((y[1:] + y[:-1]) / 2))  # trapezoid over fractions 0..1, equal steps


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=40)
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--method", default="GradCAM")
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", action="store_true")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    root = kermany.data_root()
    rows = [r for r in kermany.split_rows(kermany.read_labels(root), "test") if r.label == PNEUMONIA]
    rows = rows[:: max(1, len(rows) // args.n)][: args.n]
    images = [kermany.read_image(root, r) for r in rows]
    rng = np.random.default_rng(0)
    result: dict = {"images": len(images), "steps": args.steps, "method": args.method, "models": {}}
    mean_curves = {}
    for name in args.models:
        model, entry = load_model(name)
        spec = entry.spec
        acc = {k: [] for k in ("deletion_cam", "deletion_random", "insertion_cam", "insertion_random")}
        for img in images:
            x = prepare_input(img, spec).x
            cam = explain(model, x, spec.cam_layer, classifier_target(PNEUMONIA), args.method)
            order = np.argsort(-cam.ravel(), kind="stable")
            d, i = curves(model, spec, x, order, args.steps)
            dr, ir = curves(model, spec, x, rng.permutation(order.size), args.steps)
            for k, v in (("deletion_cam", d), ("deletion_random", dr), ("insertion_cam", i), ("insertion_random", ir)):
                acc[k].append(v)
        mean_curves[name] = {k: np.mean(v, axis=0) for k, v in acc.items()}
        auc = {k: [_auc(c) for c in v] for k, v in acc.items()}
        result["models"][name] = {
            "input_px": spec.input.size, **{f"{k}_auc": float(np.mean(v)) for k, v in auc.items()},
            "deletion_gain": float(np.mean(np.array(auc["deletion_random"]) - np.array(auc["deletion_cam"]))),
            "insertion_gain": float(np.mean(np.array(auc["insertion_cam"]) - np.array(auc["insertion_random"])))}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cam_faithfulness.json").write_text(json.dumps(result, indent=2))
    _figure(mean_curves, args.steps, args.out / "cam_faithfulness.png")
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{args.method} faithfulness on {len(images)} pneumonia test images, {args.steps} steps "
          "(deletion: lower is better; insertion: higher is better)")
    print("| model | input | deletion AUC CAM / random | insertion AUC CAM / random |")
    print("|---|---|---|---|")
    for name, r in result["models"].items():
        print(f"| {name} | {r['input_px']} px | {r['deletion_cam_auc']:.3f} / {r['deletion_random_auc']:.3f} | "
              f"{r['insertion_cam_auc']:.3f} / {r['insertion_random_auc']:.3f} |")
    return 0


def _figure(mean_curves: dict, steps: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frac = np.linspace(0, 1, steps + 1)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, kind in zip(axes, ("deletion", "insertion")):
        for name, c in mean_curves.items():
            line, = ax.plot(frac, c[f"{kind}_cam"], label=f"{name}: CAM order")
            ax.plot(frac, c[f"{kind}_random"], "--", color=line.get_color(), label=f"{name}: random order")
        ax.set_title(kind)
        ax.set_xlabel("fraction of pixels " + ("removed (blurred)" if kind == "deletion" else "restored"))
    axes[0].set_ylabel("calibrated P(pneumonia), mean")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    raise SystemExit(main())
