"""Streamlit side of the Reconstruct page: cached models, the slice to reconstruct and its input note.

Models come from ``st.cache_resource`` and are shared by every session: they are loaded in eval
mode and :func:`medviz.reconstruction.infer.compare` runs every forward pass inside
:func:`medviz.models.runtime.using` (the model's lock, eval mode, inference mode), so no model lock is
needed here; the one lock below only serialises the first import of MONAI's reconstruction package.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import streamlit as st

from medviz.constants import Task
from medviz.models.registry import list_models
from medviz.models.weights import load_model
from medviz.reconstruction.infer import compare, input_note
from medviz.types import MedvizError, Volume
from medviz.ui.cache import session_memo, session_memo_get

_IMPORT_LOCK = threading.Lock()


def _import_monai() -> None:
    """Import MONAI completely, once, before any ``monai.apps`` submodule.

    A script thread that imports ``monai.apps.reconstruction`` while another thread (an interrupted
    rerun, another session) is still inside ``monai/__init__`` sees a half-initialised ``monai.apps``
    and fails with a circular-import error; serialising the first import avoids that.
    """
    with _IMPORT_LOCK:
        import monai  # noqa: F401
        import monai.apps.reconstruction.networks.nets.complex_unet  # noqa: F401


def recon_models() -> list[Any]:
    """Registered reconstruction-family models (``task == "reconstruction"``), as manifest entries."""
    return list_models(task=Task.RECONSTRUCTION)


@st.cache_resource(max_entries=4, show_spinner="Loading model…")
def cached_model(name: str) -> tuple[Any, Any]:
    """``medviz.models.weights.load_model(name)`` on CPU, once per process (sha256-checked)."""
    _import_monai()
    return load_model(name, device="cpu")


def run_compare(name: str, image: np.ndarray, **kwargs: Any) -> dict[str, Any]:
    """:func:`medviz.reconstruction.infer.compare` with the cached model (it guards the shared model itself)."""
    _import_monai()
    model, entry = cached_model(name)
    spec = entry.spec
    return compare(model, spec.mode, image, cascades=spec.cascades, **kwargs)


def volume_slice(volume: Volume, index: int, channel: int | None = None) -> np.ndarray:
    """Slice ``index`` (0-based) of a Volume as a 2D float array: one colour ``channel`` (0..2) of an RGB volume;
    grey volumes take no channel.

    Raises:
        MedvizError: index out of range, a channel missing for RGB or given for a grey volume.
    """
    if not 0 <= index < volume.shape[0]:
        raise MedvizError(f"slice {index + 1} is outside 1..{volume.shape[0]}")
    arr = volume.array[index]
    if volume.is_rgb:
        if channel is None or not 0 <= channel < 3:
            raise MedvizError(f"choose a colour channel 0..2 of this RGB study, not {channel}")
        return np.asarray(arr[..., channel], dtype=np.float32)
    if channel is not None:
        raise MedvizError("this study is grey-scale: it has no colour channel to choose")
    return np.asarray(arr, dtype=np.float32)


def slider_key(volume: Volume) -> str:
    """A widget key that changes with the study's shape, so the slice slider resets on a new study."""
    return "recon.slice." + "x".join(str(s) for s in volume.array.shape)


def distribution_note(volume: Volume, image: np.ndarray, name: str) -> str | None:
    """A warning when the slice is unlike the model's training data, else None (see
    :func:`medviz.reconstruction.infer.input_note`)."""
    _, entry = cached_model(name)
    return input_note(entry.spec, name, volume.modality, tuple(image.shape))


#: The slow classical baseline of each mode, computed only when asked for.
SLOW_BASELINE = {"recon": "CS-TV", "denoise": "BM3D"}


def compare_panel(name: str, volume: Volume, index: int, channel: int | None, params: dict[str, Any],
                  slow: bool, token: str) -> tuple[np.ndarray, dict[str, Any]]:
    """``(the slice, the comparison)``: slice ``index`` (RGB: ``channel``) degraded and restored by the model
    and the baselines (:func:`run_compare`), memoised in this session for the study ``token`` and these settings.

    Results are keyed by model name, slice and settings, so a model change never shows another model's result;
    while one is computed a spinner says so (call this where the result goes: Streamlit dims the old result
    below it until the new one replaces it). The slow baseline (:data:`SLOW_BASELINE`) runs only when ``slow`` asks for it (the page's button); once
    computed for a slice and settings, that comparison is shown whenever they come back, without asking again.
    """
    image = volume_slice(volume, index, channel)
    memo_name = f"{name}|{index}|{channel}|{sorted(params.items())}"
    if (with_slow := session_memo_get(f"{memo_name}|slow", token)) is not None:
        return image, with_slow
    slow_name = f"{memo_name}|slow" if slow else f"{memo_name}|fast"

    def compute() -> dict[str, Any]:
        with st.spinner(f"Restoring slice {index + 1} with {name}{' and the slow baseline' if slow else ''}…"):
            return run_compare(name, image, slow_baseline=slow, **params)

    return image, session_memo(slow_name, token, compute)


def has_slow_baseline(name: str, index: int, channel: int | None, params: dict[str, Any], token: str) -> bool:
    """Whether the slow baseline of this slice and settings was already computed in this session."""
    return session_memo_get(f"{name}|{index}|{channel}|{sorted(params.items())}|slow", token) is not None

