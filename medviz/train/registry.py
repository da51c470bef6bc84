"""Task plugins for the training engine: one module per model family.

Each module defines a :class:`medviz.train.task.TrainTask` subclass and registers it in
:data:`TASKS` (name -> import path), so the engine and the command line stay family-agnostic.

Extra tasks (tests, experiments) are added explicitly through the environment variable
``MEDVIZ_TRAIN_TASKS``: ``name=module:Class`` entries separated by commas, e.g.
``MEDVIZ_TRAIN_TASKS=toy=tests.train.toy_task:ToyTask``. Nothing else is ever imported: a task
name on the command line or the page must be one of :func:`task_names`.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
from typing import Any

from medviz.constants import Task
from medviz.train.task import TrainTask

# task name -> "module:Class". Imported lazily so one family's heavy imports never slow another.
TASKS: dict[str, str] = {
    Task.CLASSIFICATION: "medviz.classification.train:ClassificationTask",
    Task.SEGMENTATION: "medviz.segmentation.train:SegmentationTask",
    Task.RECONSTRUCTION: "medviz.reconstruction.train:ReconstructionTask",
    Task.SEQUENCE: "medviz.sequence.train:SequenceTask",
    Task.SUPERRES: "medviz.superres.train:SuperResTask",
}

EXTRA_TASKS_ENV = "MEDVIZ_TRAIN_TASKS"
_ENTRY = re.compile(r"^([a-z][a-z0-9_-]*)=([A-Za-z_][\w.]*):([A-Za-z_]\w*)$")


def extra_tasks() -> dict[str, str]:
    """Tasks registered through ``MEDVIZ_TRAIN_TASKS`` (read at each call)."""
    out: dict[str, str] = {}
    for item in filter(None, (x.strip() for x in os.environ.get(EXTRA_TASKS_ENV, "").split(","))):
        m = _ENTRY.match(item)
        if not m:
            raise ValueError(f"{EXTRA_TASKS_ENV} entry {item!r} is not 'name=module:Class'")
        if m.group(1) in TASKS:
            raise ValueError(f"{EXTRA_TASKS_ENV} may not replace the built-in task {m.group(1)!r}")
        out[m.group(1)] = f"{m.group(2)}:{m.group(3)}"
    return out


def task_names() -> list[str]:
    """Every task the engine can train: the built-in families plus :func:`extra_tasks`."""
    return [*TASKS, *extra_tasks()]


def available_tasks() -> list[str]:
    """The task names whose plugin module is actually installed (plugins may be missing)."""
    out = []
    for name in task_names():
        module = {**TASKS, **extra_tasks()}[name].split(":")[0]
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if found:
            out.append(name)
    return out


def get_task_class(name: str) -> Any:
    """The :class:`~medviz.train.task.TrainTask` subclass registered under ``name``."""
    registry = {**TASKS, **extra_tasks()}
    if name not in registry:
        raise ValueError(f"Unknown task {name!r}; choose one of {', '.join(registry)}")
    module, cls_name = registry[name].split(":")
    cls = getattr(importlib.import_module(module), cls_name)
    if not (isinstance(cls, type) and issubclass(cls, TrainTask)):
        raise TypeError(f"{registry[name]} is not a TrainTask subclass")
    return cls
