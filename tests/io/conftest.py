"""Fixtures for the loader tests; the builders themselves live in ``io_builders.py``."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from io_builders import dicom_bytes, make_ct_dataset


@pytest.fixture
def ct_series() -> Callable[..., list[tuple[str, bytes]]]:
    """Factory: ``ct_series(n=5, step=2.0, ...)`` -> shuffled ``(name, bytes)`` of an axial series.

    Slice ``k`` is at z = 10 + k*step and holds the constant stored value ``1024 + k`` (HU = k),
    so the loaded order can be read back from the voxel values.
    """

    def build(
        n: int = 5, step: float = 2.0, rows: int = 6, cols: int = 8, zs: list[float] | None = None, seed: int = 0, **kw
    ):
        zs = zs if zs is not None else [10.0 + k * step for k in range(n)]
        files = []
        for k, z in enumerate(zs):
            px = np.full((rows, cols), 1024 + k, dtype=np.int16)
            px[0, 0] = 0  # marks the image's first row/column
            ds = make_ct_dataset(px, position=(-5.0, -7.0, z), instance=len(zs) - k, **kw)
            files.append((f"series/IM{k:04d}", dicom_bytes(ds)))
        order = np.random.default_rng(seed).permutation(len(files))
        return [files[i] for i in order]

    return build


@pytest.fixture
def small_limits(monkeypatch):
    """Factory to shrink :class:`medviz.config.Limits` for the loaders (bomb tests stay fast)."""
    from dataclasses import replace

    from medviz.config import Limits
    from medviz.io import limits as lim_mod

    def apply(**kw) -> Limits:
        lim = replace(Limits(), **kw)
        monkeypatch.setattr(lim_mod, "limits", lambda: lim)
        return lim

    return apply
