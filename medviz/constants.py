"""Constants shared across the project: window presets, enums and names."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Plane(StrEnum):
    AXIAL = "axial"
    CORONAL = "coronal"
    SAGITTAL = "sagittal"


class Task(StrEnum):
    CLASSIFICATION = "classification"
    SEGMENTATION = "segmentation"
    RECONSTRUCTION = "reconstruction"
    SEQUENCE = "sequence"
    SUPERRES = "superres"


@dataclass(frozen=True)
class WindowPreset:
    """A window (width) / level (centre) pair in the image's units (HU for CT)."""

    name: str
    width: float
    level: float

    @property
    def low(self) -> float:
        return self.level - self.width / 2

    @property
    def high(self) -> float:
        return self.level + self.width / 2


# CT presets as used by OHIF (width / level in HU); see ../shared/docs/STYLE.md.
CT_PRESETS: dict[str, WindowPreset] = {
    p.name: p
    for p in (
        WindowPreset("Soft tissue", 400, 40),
        WindowPreset("Lung", 1500, -600),
        WindowPreset("Liver", 150, 90),
        WindowPreset("Bone", 2500, 480),
        WindowPreset("Brain", 80, 40),
    )
}

# Automatic window for MR, X-ray and photos: these percentiles of the finite voxel values.
AUTO_WINDOW_PERCENTILES = (0.5, 99.5)
AUTO_PRESET_NAME = "Auto (percentile)"
