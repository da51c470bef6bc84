"""Options as dataclasses: one field per option, described by its metadata.

Library functions take an options dataclass; the command lines (:mod:`medviz.train.cli`,
:func:`medviz.evaluate.main`) derive their argparse flags from :func:`describe`, and the Training page
derives its widgets from the same description, so a label, a help text or a range is written once.

Field metadata (written with :func:`option`): ``label`` (words for the page), ``help`` (CLI help and
page tooltip), ``min``/``max`` (inclusive, checked by :func:`check`, per element for lists),
``choices``, ``metavar`` (CLI), ``flag`` (CLI name when not ``--field-name``; booleans that default
to True are ``--no-field-name``) and ``advanced`` (the page tucks the option away).

Example:
    >>> @dataclass(frozen=True)
    ... class Opts:
    ...     crop: int = option(128, label="Training crop size (pixels)", min=32, max=512)
    >>> describe(Opts)[0].flag
    '--crop'
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import MISSING, dataclass
from pathlib import Path
from typing import Any, Callable


def option(default: Any = MISSING, *, label: str, help: str = "", min: float | None = None,
           max: float | None = None, choices: Any = None, metavar: str | tuple[str, ...] | None = None,
           flag: str | None = None, advanced: bool = False, default_factory: Callable[[], Any] | Any = MISSING) -> Any:
    """A dataclass ``field`` carrying the option's description (see the module docstring)."""
    meta = {"label": label, "help": help, "min": min, "max": max,
            "choices": None if choices is None else tuple(choices), "metavar": metavar, "flag": flag,
            "advanced": advanced}
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class OptionInfo:
    """One option of an options dataclass, as the command line and the page see it.

    Attributes:
        name: field name (also the argparse ``dest`` after a prefix).
        flag: command-line flag (``--crop``; ``--no-amp`` for a boolean that defaults to True).
        type: element type: ``bool``, ``int``, ``float``, ``str`` or ``Path``.
        container: ``list`` or ``tuple`` for multi-valued options, else None.
        length: fixed number of values of a ``tuple[X, X]`` option (None: one or more).
        optional: None is a valid value (``int | None``).
    """

    name: str
    flag: str
    label: str
    help: str
    type: type
    default: Any
    container: type | None = None
    length: int | None = None
    optional: bool = False
    choices: tuple[Any, ...] | None = None
    min: float | None = None
    max: float | None = None
    metavar: str | tuple[str, ...] | None = None
    advanced: bool = False

    @property
    def nargs(self) -> int | str | None:
        """argparse ``nargs``: None for one value, N for a fixed tuple, ``"+"`` for a list."""
        return None if self.container is None else (self.length or "+")

    @property
    def negated(self) -> bool:
        """A boolean that defaults to True: the flag turns it off."""
        return self.type is bool and self.default is True

    def convert(self, value: Any) -> Any:
        """``value`` (argparse list, page text split, ...) as the field's type (tuple/list of the element type)."""
        if value is None:
            return None
        if self.container is not None:
            return self.container(self._scalar(v) for v in value)
        return self._scalar(value)

    def _scalar(self, v: Any) -> Any:
        if self.type is bool:
            return bool(v)
        if self.type is float and isinstance(v, (int, float)):
            return float(v)
        return self.type(v)

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not valid for this option (None: it is)."""
        what = f"{self.label} ({self.flag})"
        if value is None:
            return None if self.optional else f"{what} needs a value"
        values = list(value) if self.container is not None else [value]
        if self.container is not None and (not values or (self.length and len(values) != self.length)):
            return f"{what} needs {self.length or 'one or more'} values, got {len(values)}"
        for v in values:
            if self.type in (int, float) and (isinstance(v, bool) or not isinstance(v, (int, float))
                                              or (self.type is int and not isinstance(v, int))):
                return f"{what}: {v!r} is not {'an integer' if self.type is int else 'a number'}"
            if self.choices is not None and v not in self.choices:
                return f"{what}: {v!r} is not one of {', '.join(map(str, self.choices))}"
            if self.min is not None and v < self.min:
                return f"{what}: {v!r} is below the minimum {self.min:g}"
            if self.max is not None and v > self.max:
                return f"{what}: {v!r} is above the maximum {self.max:g}"
        return None


def _analyse(hint: Any) -> tuple[type, type | None, int | None, bool]:
    """(element type, container, fixed length, optional) of a field annotation."""
    optional = False
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(args) < len(typing.get_args(hint))
        if len(args) != 1:
            raise TypeError(f"unsupported option type {hint!r}")
        hint = args[0]
    origin = typing.get_origin(hint)
    if origin in (list, tuple):
        args = typing.get_args(hint)
        fixed = origin is tuple and Ellipsis not in args
        return args[0], origin, len(args) if fixed else None, optional
    if hint not in (bool, int, float, str, Path):
        raise TypeError(f"unsupported option type {hint!r}")
    return hint, None, None, optional


def describe(cls: Any) -> list[OptionInfo]:
    """The options of a dataclass (class or instance), in field order."""
    cls = cls if isinstance(cls, type) else type(cls)
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        meta = f.metadata
        element, container, length, optional = _analyse(hints[f.name])
        default = f.default_factory() if f.default_factory is not MISSING else f.default
        negated = element is bool and container is None and default is True
        flag = meta.get("flag") or ("--no-" if negated else "--") + f.name.replace("_", "-")
        out.append(OptionInfo(
            name=f.name, flag=flag, label=meta.get("label") or f.name.replace("_", " "), help=meta.get("help", ""),
            type=element, default=None if default is MISSING else default, container=container, length=length,
            optional=optional or default is None, choices=meta.get("choices"), min=meta.get("min"),
            max=meta.get("max"), metavar=meta.get("metavar"), advanced=bool(meta.get("advanced"))))
    return out


def problems(options: Any) -> list[str]:
    """Every out-of-range, wrong-choice or missing value of an options dataclass instance."""
    return [p for o in describe(options) if (p := o.problem(getattr(options, o.name))) is not None]


def check(options: Any) -> None:
    """Raise ``ValueError`` naming every invalid value of ``options`` (see :func:`problems`)."""
    found = problems(options)
    if found:
        raise ValueError("; ".join(found))


def non_default(options: Any) -> dict[str, Any]:
    """The fields of ``options`` whose value differs from the field default (after type conversion)."""
    out = {}
    for o in describe(options):
        value = getattr(options, o.name)
        if o.convert(value) != o.convert(o.default):
            out[o.name] = value
    return out


@dataclass(frozen=True)
class EvalOptions:
    """Options every evaluator takes (``python -m medviz.evaluate --model NAME ...``).

    Each task's evaluator (``medviz.<task>.evaluate``) subclasses this with its own options and
    exposes the subclass as ``OPTIONS``.
    """

    data: Path | None = option(None, label="Data folder or file",
                               help="data folder/file (default: the model's data set)")
    split: str = option("test", label="Split", help="split to evaluate (default: test)")
    device: str = option("auto", label="Device", choices=("auto", "cpu", "cuda"))

    def quick(self) -> EvalOptions:
        """The same evaluation with fewer bootstrap resamples (the Training page wants seconds)."""
        return self
