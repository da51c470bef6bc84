"""Task plugins for the training engine: one module per model family.

Each module defines a :class:`medviz.train.tasks.base.TrainTask` subclass and registers it in
:data:`TASKS` (name -> import path), so the engine and the command line stay family-agnostic.
"""

from __future__ import annotations

import importlib
from typing import Any

# task name -> "module:Class". Imported lazily so one family's heavy imports never slow another.
TASKS: dict[str, str] = {
    "classification": "medviz.train.tasks.classification:ClassificationTask",
    "segmentation": "medviz.train.tasks.segmentation:SegmentationTask",
    "reconstruction": "medviz.train.tasks.reconstruction:ReconstructionTask",
}


def get_task_class(name: str) -> Any:
    if name not in TASKS:
        raise ValueError(f"Unknown task {name!r}; choose one of {', '.join(TASKS)}")
    module, cls = TASKS[name].split(":")
    return getattr(importlib.import_module(module), cls)
