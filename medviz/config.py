"""Settings resolved lazily from the environment, with actionable errors.

Environment variables:
    MEDVIZ_DATA_DIR: folder with the public data sets (default ``../shared/data`` beside the project).
    MEDVIZ_WEIGHTS_DIR: folder with shipped weights and ``manifest.json`` (default ``weights/``).
    MEDVIZ_RUNS_DIR: folder for training runs and checkpoints (default: a ``medviz-runs`` folder in the
        system temp dir, never inside the project).
    MEDVIZ_USER_MODELS_DIR: folder for models promoted from the Training page, listed beside the shipped ones and
        marked user-trained (default: ``user-models`` in the runs folder, never inside the project; set it to a
        lasting folder to keep promoted models across reboots).
    MEDVIZ_DEVICE: ``cpu``, ``cuda`` or ``auto`` (default ``auto``: CUDA when available).
    MEDVIZ_INFER_THREADS: torch intra-op threads of the web server, set once at start (default ``1``, chosen by
        ``bench/load.py``: concurrent sessions on a small host wait less; ``auto`` keeps torch's default).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Limits:
    """Hard limits checked *before* allocating or extracting (bad-input protection)."""

    max_upload_bytes: int = 1024 * 1024 * 1024  # matches server.maxUploadSize = 1024 (MB)
    max_unpacked_bytes: int = 2 * 1024 * 1024 * 1024  # total bytes extracted from one zip
    max_zip_entries: int = 20_000
    max_dicom_files: int = 10_000  # distinct DICOM files parsed per upload (after de-duplication by SOP UID)
    max_series: int = 100  # series offered per upload; the rest are listed in a note, not decoded
    max_zip_ratio: float = 200.0  # per-entry uncompressed/compressed ratio
    max_voxels: int = 600_000_000  # ~2.4 GB as float32
    max_image_pixels: int = 100_000_000  # PIL decompression-bomb limit (never None)
    max_dim: int = 65_535


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    weights_dir: Path
    runs_dir: Path
    user_models_dir: Path  # promoted (user-trained) models, never the shipped weights_dir
    device: str
    limits: Limits
    infer_threads: int | None = 1  # None: torch's default (one per core)


def get_settings() -> Settings:
    """Read settings from the environment each call (cheap; tests may change the environment)."""
    data_dir = Path(os.environ.get("MEDVIZ_DATA_DIR", PROJECT_ROOT.parent / "shared" / "data"))
    weights_dir = Path(os.environ.get("MEDVIZ_WEIGHTS_DIR", PROJECT_ROOT / "weights"))
    runs_dir = Path(os.environ.get("MEDVIZ_RUNS_DIR", Path(tempfile.gettempdir()) / "medviz-runs"))
    device = os.environ.get("MEDVIZ_DEVICE", "auto").lower()
    if device not in {"auto", "cpu", "cuda"}:
        raise ValueError(f"MEDVIZ_DEVICE must be 'auto', 'cpu' or 'cuda', not {device!r}")
    return Settings(data_dir=data_dir, weights_dir=weights_dir, runs_dir=runs_dir, device=device, limits=Limits(),
                    infer_threads=_infer_threads(os.environ.get("MEDVIZ_INFER_THREADS", "1")),
                    user_models_dir=Path(os.environ.get("MEDVIZ_USER_MODELS_DIR") or runs_dir / "user-models"))


def _infer_threads(text: str) -> int | None:
    """``MEDVIZ_INFER_THREADS``: a positive whole number, or ``auto`` (None: torch's default)."""
    if text.strip().lower() == "auto":
        return None
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"MEDVIZ_INFER_THREADS must be a whole number of threads (1 or more) or 'auto', not {text!r}")
    return n


def data_path(*parts: str) -> Path:
    """A path inside the data directory; raises FileNotFoundError naming the setting to fix."""
    p = get_settings().data_dir.joinpath(*parts)
    if not p.exists():
        raise FileNotFoundError(f"{p} not found: set MEDVIZ_DATA_DIR to the folder holding the public data sets")
    return p


def select_device(preference: str | None = None) -> str:
    """``"cuda"`` when requested/available, else ``"cpu"``."""
    import torch

    pref = (preference or get_settings().device).lower()
    if pref == "cpu":
        return "cpu"
    if torch.cuda.is_available():
        return "cuda"
    if pref == "cuda":
        raise RuntimeError("MEDVIZ_DEVICE=cuda but no CUDA device is available")
    return "cpu"
