"""Small, defensive conversions of DICOM attribute values (bad VRs give None or a default)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def first(seq: Any) -> Any:
    try:
        return seq[0] if seq else None
    except (TypeError, IndexError):
        return None


def first_value(v: Any) -> Any:
    if isinstance(v, list | tuple) or (hasattr(v, "__len__") and not isinstance(v, str | bytes)):
        return v[0] if len(v) else None
    return v


def to_float(v: Any, default: float) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return default
    return f if math.isfinite(f) else default


def to_int(v: Any) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def positive(v: Any) -> float | None:
    f = to_float(v, math.nan)
    return f if f > 0 else None


def vector(v: Any, n: int) -> np.ndarray | None:
    try:
        a = np.asarray([float(x) for x in v], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return a if a.shape == (n,) and np.all(np.isfinite(a)) else None


def pair(v: Any) -> tuple[float, float] | None:
    a = vector(v, 2) if v is not None else None
    if a is None or np.any(a <= 0):
        return None
    return float(a[0]), float(a[1])


def valid_orientation(iop: np.ndarray) -> bool:
    r, c = iop[:3], iop[3:]
    nr, nc = np.linalg.norm(r), np.linalg.norm(c)
    return bool(abs(nr - 1) < 0.05 and abs(nc - 1) < 0.05 and abs(float(r @ c)) < 0.05)


def ts_name(uid: str) -> str:
    from pydicom.uid import UID

    u = UID(uid)
    return u.name if u.is_transfer_syntax else uid


def plain(value: Any) -> Any:
    from pydicom.multival import MultiValue
    from pydicom.valuerep import IS, DSdecimal, DSfloat

    if isinstance(value, MultiValue | list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, IS):
        return int(value)
    if isinstance(value, DSfloat | DSdecimal | float):
        return float(value)
    if isinstance(value, int):
        return int(value)
    return str(value).strip()
