"""Options of the segmentation training task (``python -m medviz.train --task segmentation ...``), shared by
the task (:mod:`medviz.segmentation.train`) and its model card (:mod:`medviz.segmentation.card`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from medviz.options import option
from medviz.train.task import init_note_option, init_option


@dataclass(frozen=True)
class SegmentationTrainOptions:
    """Options of the segmentation task (``python -m medviz.train --task segmentation ...``)."""

    crop: int = option(128, label="Training crop size (pixels)", min=16, max=1024,
                       help="training crop size in pixels (default 128)")
    pos_neg: tuple[float, float] = option((2.0, 1.0), label="Tumour : background crop ratio", min=0.0,
                                          metavar=("POS", "NEG"),
                                          help="tumour-centred vs background crop ratio (default 2 1)")
    unet_channels: list[int] = option(default_factory=lambda: [16, 32, 64, 128, 256], label="UNet channels per level",
                                      min=1, help="feature channels of each UNet level, top to bottom")
    res_units: int = option(2, label="Residual units per level", min=0, max=16)
    dropout: float = option(0.1, label="Dropout", min=0.0, max=1.0)
    cache_rate: float = option(1.0, label="Cached fraction of the training set", min=0.0, max=1.0)
    skip_test: bool = option(False, label="Skip the test split",
                             help="export without touching the test split (candidate runs)")
    init: Path | None = init_option()
    init_note: str = init_note_option()
    label_value: int | None = option(None, label="Foreground label value (NIfTI pairs)", metavar="K",
                                     help="NIfTI pairs: foreground is label == K (default: label > 0)")
    folds: int = option(0, label="Cross-validation folds (0: the folder's train/val split)", min=0, max=20,
                        help="patient-level cross-validation over train + val (medviz.segmentation.folds); a fold "
                             "run never touches test (default 0: train on train, validate on val)")
    fold: int = option(0, label="Held-out fold", min=0, max=19,
                       help="with --folds K: the fold (0..K-1) held out for validation")
    fold_seed: int = option(0, label="Fold seed", min=0, help="with --folds: the seed that deals patients into folds")
    members: list[Path] | None = option(
        None, label="Fold models to ensemble (run folders, fold 0 first)", metavar="RUN",
        help="with --folds K: the K finished fold runs, in fold order (member i trained with --fold i); "
             "exports their probability-averaging ensemble, post-processing chosen on the out-of-fold "
             "predictions, test scored once; no training")
    members_note: str = option("", label="How the fold models were trained",
                               help="--members: the commands that trained the fold runs, written into the model card")
