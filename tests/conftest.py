"""Shared test fixtures.

``data_dir``: the public data sets (``MEDVIZ_DATA_DIR``, default ``../shared/data``). Tests that need
them skip with a clear reason on a fresh clone without the folder, but *fail* under CI (``CI`` set),
where the data must be present.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# MONAI's optional nvImageCodec plugin logs on every LoadImage on CPU (STACK.md pitfall 2).
logging.getLogger("monai.data.nvimgcodec_pydicom_plugin").setLevel(logging.ERROR)
warnings.filterwarnings("ignore", message=".*NvImgCodecPydicomReader.*")


def _data_dir() -> Path:
    from medviz.config import get_settings

    return get_settings().data_dir


@pytest.fixture(scope="session")
def data_dir() -> Path:
    d = _data_dir()
    if not (d / "MANIFEST.md").exists():
        if os.environ.get("CI"):
            pytest.fail(f"CI run without the public data sets: {d} not found (set MEDVIZ_DATA_DIR)")
        pytest.skip(f"public data sets not found at {d}; set MEDVIZ_DATA_DIR to run data tests")
    return d


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
