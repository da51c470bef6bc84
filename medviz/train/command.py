"""One training command as data: ``python -m medviz.train ...`` = :class:`TrainCommand`.

A command is the task name, the run options (:class:`RunOptions`: data, name, folders, resume),
the engine's hyperparameters (:class:`~medviz.train.engine.TrainConfig`) and the task's own options
dataclass (``TrainTask.Options``). The command line (:mod:`medviz.train.cli`) parses argv into one and
writes one back as argv; the Training page and the job manager build and use one directly.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medviz.config import get_settings
from medviz.options import describe, non_default, option, problems
from medviz.train.engine import TrainConfig
from medviz.train.registry import get_task_class
from medviz.train.task import TrainTask


@dataclass(frozen=True)
class RunOptions:
    """Where a run reads and writes (shared by every task)."""

    data: Path | None = option(None, label="Data folder or file",
                               help="data folder or file (default: the task's data set under MEDVIZ_DATA_DIR)")
    name: str | None = option(None, label="Model name", help="model name in the registry (default: <task>-run)")
    out: Path | None = option(None, label="Export folder",
                              help="folder for weights, model card and metrics (default: <run-dir>/export)")
    register: bool = option(False, label="Register the model", help="add the model to <out>/manifest.json")
    run_dir: Path | None = option(None, label="Checkpoint folder",
                                  help="checkpoint folder (default: MEDVIZ_RUNS_DIR/<name>)")
    resume: bool = option(False, label="Resume", help="continue from <run-dir>/last.pt")
    quiet: bool = option(False, label="No progress bar", help="no progress bar")


@dataclass(frozen=True)
class TrainCommand:
    """Everything one training run is configured by.

    Attributes:
        task: registered task name (:func:`medviz.train.registry.task_names`).
        run: data source and output folders.
        config: the engine's hyperparameters.
        options: the task's options dataclass instance (None: its defaults).

    Example:
        >>> cmd = TrainCommand("segmentation", config=TrainConfig(epochs=5),
        ...                    options=SegmentationTrainOptions(crop=96))
        >>> result = train(cmd.build_task(), cmd.config, cmd.run_dir())
    """

    task: str
    run: RunOptions = field(default_factory=RunOptions)
    config: TrainConfig = field(default_factory=TrainConfig)
    options: Any = None

    def __post_init__(self) -> None:
        cls = self.task_class()
        if self.options is None:
            object.__setattr__(self, "options", cls.Options())
        elif not isinstance(self.options, cls.Options):
            raise TypeError(f"task {self.task!r} takes {cls.Options.__name__}, not {type(self.options).__name__}")

    def task_class(self) -> type[TrainTask]:
        return get_task_class(self.task)

    def build_task(self) -> TrainTask:
        """The task plugin configured by this command."""
        return self.task_class()(self.options, data=self.run.data, seed=self.config.seed)

    def problems(self) -> list[str]:
        """Every invalid value (out of range, not a choice, ...) of the run, engine and task options."""
        return [*problems(self.run), *problems(self.config), *problems(self.options)]

    def model_name(self) -> str:
        return self.run.name or f"{self.task}-run"

    def run_dir(self) -> Path:
        return self.run.run_dir or get_settings().runs_dir / self.model_name()

    def out_dir(self) -> Path:
        return self.run.out or self.run_dir() / "export"


def _text(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def options_argv(options: Any) -> list[str]:
    """The flags that give ``options`` (an options dataclass instance): its non-default fields."""
    out: list[str] = []
    by_name = {o.name: o for o in describe(options)}
    for name, value in non_default(options).items():
        o = by_name[name]
        if value is None:
            raise ValueError(f"{o.label} ({o.flag}): None cannot be written as a flag")
        if o.type is bool and o.container is None:
            out.append(o.flag)
        elif o.container is not None:
            out += [o.flag, *map(_text, value)]
        else:
            out += [o.flag, _text(value)]
    return out


def to_argv(command: TrainCommand) -> list[str]:
    """The argv that :func:`parse` turns back into ``command`` (non-default options only)."""
    return ["--task", command.task, *options_argv(command.run), *options_argv(command.config),
            *options_argv(command.options)]


def command_line(argv: list[str]) -> str:
    """The shell command that reproduces a run (``--resume`` dropped), for model cards."""
    return "python -m medviz.train " + " ".join(shlex.quote(a) for a in argv if a != "--resume")
