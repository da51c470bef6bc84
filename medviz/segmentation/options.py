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
