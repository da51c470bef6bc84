"""Evaluation of registered models on held-out data, one module per task.

Each task module ``medviz.evaluation.<task>`` provides::

    add_arguments(parser)                      # extra options, e.g. --acceleration
    evaluate(entry, args) -> dict              # one JSON-able result object (model, task, split, n, ...)
    format_table(result) -> str                # the human-readable table printed without --json
"""

from __future__ import annotations

import importlib
from types import ModuleType

EVALUATORS = {
    "classification": "medviz.evaluation.classification",
    "segmentation": "medviz.evaluation.segmentation",
    "reconstruction": "medviz.evaluation.reconstruction",
}


def evaluator_for(task: str) -> ModuleType:
    if task not in EVALUATORS:
        raise ValueError(f"No evaluator for task {task!r}")
    return importlib.import_module(EVALUATORS[task])
