"""Fixtures for engine tests: the toy task registered through ``MEDVIZ_TRAIN_TASKS``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOY = "toy=tests.train.toy_task:ToyTask"


def toy_env(**extra: str) -> dict[str, str]:
    """Environment for a subprocess that can train the toy task on one CPU thread."""
    env = dict(os.environ)
    env.update({"MEDVIZ_TRAIN_TASKS": TOY, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                "PYTHONPATH": str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""), "MEDVIZ_DEVICE": "cpu"})
    env.update(extra)
    return env


def train_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "medviz.train", "--task", "toy", "--device", "cpu", "--quiet", *args]


@pytest.fixture(autouse=True)
def _toy_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDVIZ_TRAIN_TASKS", TOY)
    monkeypatch.setenv("MEDVIZ_DEVICE", "cpu")
