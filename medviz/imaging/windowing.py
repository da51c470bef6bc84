"""Pure array functions for display: windowing, automatic windows and the presets of a volume.

Nothing here modifies its input or imports Streamlit. Windows are :class:`WindowPreset` values
(width / level in the image's units, HU for CT).

Example:
    >>> import numpy as np
    >>> from medviz.constants import CT_PRESETS
    >>> window_to_uint8(np.array([-1000.0, 40.0, 1000.0]), CT_PRESETS["Soft tissue"]).tolist()
    [0, 128, 255]
"""

from __future__ import annotations

import difflib

import numpy as np

from medviz.constants import (
    AUTO_PRESET_NAME,
    AUTO_WINDOW_PERCENTILES,
    CT_PRESETS,
    WindowPreset,
)
from medviz.types import Volume

#: Name of the window spanning the finite minimum to maximum.
FULL_RANGE_NAME = "Full range"
#: Name of the window stored in the file (DICOM WindowWidth / WindowCenter).
FILE_WINDOW_NAME = "From file"
#: Default preset for CT volumes.
#: Auto windows look at most this many voxels (an even stride over the volume) to stay fast.
AUTO_WINDOW_MAX_SAMPLES = 2_000_000
_MIN_WIDTH = 1e-6


def is_ct(volume: Volume) -> bool:
    """True for CT volumes in Hounsfield units (the HU presets apply)."""
    return not volume.is_rgb and (volume.units == "HU" or volume.modality.upper() == "CT")


def window_to_uint8(values: np.ndarray, window: WindowPreset) -> np.ndarray:
    """Map values through a linear window to display grey levels.

    Args:
        values: array of any shape, in the image's units (HU for CT). Not modified.
        window: width / level; a width <= 0 is treated as a tiny positive width (a step).

    Returns:
        uint8 array of the same shape: ``low -> 0``, ``high -> 255``, clipped outside; NaN -> 0,
        +Inf -> 255, -Inf -> 0.
    """
    width = max(float(window.width), _MIN_WIDTH)
    low = float(window.level) - width / 2
    scaled = (np.asarray(values, dtype=np.float32) - np.float32(low)) * np.float32(255.0 / width)
    scaled = np.nan_to_num(scaled, nan=0.0, posinf=255.0, neginf=0.0)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def finite_sample(values: np.ndarray, max_samples: int = AUTO_WINDOW_MAX_SAMPLES) -> np.ndarray:
    """At most ``max_samples`` finite values taken at an even stride (1D float array, a copy)."""
    flat = np.asarray(values).reshape(-1)
    if flat.size > max_samples:
        flat = flat[:: int(np.ceil(flat.size / max_samples))]
    return flat[np.isfinite(flat)]


def auto_window(
    values: np.ndarray,
    percentiles: tuple[float, float] = AUTO_WINDOW_PERCENTILES,
    name: str = AUTO_PRESET_NAME,
) -> WindowPreset:
    """A window spanning two percentiles of the finite values (NaN and +-Inf are ignored).

    Args:
        values: array of any shape (scalar data).
        percentiles: lower and upper percentile in [0, 100].
        name: name of the returned preset.

    Returns:
        A preset with finite level and a width >= 1e-6. All-non-finite input gives width 1,
        level 0.5; a constant image gives width 1 centred on the constant.
    """
    sample = finite_sample(values)
    if sample.size == 0:
        return WindowPreset(name, 1.0, 0.5)
    low, high = (float(v) for v in np.percentile(sample, percentiles))
    if not high - low > _MIN_WIDTH:
        return WindowPreset(name, 1.0, low)
    return WindowPreset(name, high - low, (high + low) / 2)


def full_range_window(values: np.ndarray) -> WindowPreset:
    """The window from the finite minimum to the finite maximum (see :func:`auto_window`)."""
    return auto_window(values, (0.0, 100.0), FULL_RANGE_NAME)


def file_window(meta: dict) -> WindowPreset | None:
    """The window stored in the file (``meta["WindowWidth"]``/``["WindowCenter"]``), if valid.

    Multi-valued entries use the first value. Returns None when absent, non-numeric or width <= 0.
    """

    def first(value: object) -> float:
        if isinstance(value, (list, tuple)):
            value = value[0] if value else None
        return float(value)  # type: ignore[arg-type]

    try:
        width, level = first(meta["WindowWidth"]), first(meta["WindowCenter"])
    except (KeyError, TypeError, ValueError, IndexError):
        return None
    if not (np.isfinite(width) and np.isfinite(level) and width > 0):
        return None
    return WindowPreset(FILE_WINDOW_NAME, width, level)


def window_presets(volume: Volume) -> dict[str, WindowPreset]:
    """The windows offered for a volume, default first.

    CT: the HU presets (soft tissue first), the file's window if any, then the automatic window.
    Other scalar data (MR, X-ray, ultrasound, photos in grey): the file's window if any, the
    automatic percentile window, then full range. RGB: none (colour images are shown as they are).

    Args:
        volume: the study.

    Returns:
        Name -> preset, in menu order; empty for RGB volumes.
    """
    if volume.is_rgb:
        return {}
    auto = auto_window(volume.array)
    stored = file_window(volume.meta)
    from_file = {FILE_WINDOW_NAME: stored} if stored else {}
    if is_ct(volume):
        return {**CT_PRESETS, **from_file, AUTO_PRESET_NAME: auto}
    return {**from_file, AUTO_PRESET_NAME: auto, FULL_RANGE_NAME: full_range_window(volume.array)}


def look_up_preset(name: str, presets: dict[str, WindowPreset]) -> WindowPreset:
    """The preset called ``name`` (case-insensitive).

    Raises:
        KeyError: unknown name; the message lists the choices and a close match if any.
    """
    by_lower = {k.lower(): v for k, v in presets.items()}
    if name.lower() in by_lower:
        return by_lower[name.lower()]
    close = difflib.get_close_matches(name, list(presets), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise KeyError(f"Unknown window preset {name!r}; choose one of {list(presets)}.{hint}")
