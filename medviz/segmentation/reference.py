"""Reference masks (NIfTI or DICOM SEG) read and brought onto a study's grid through patient geometry,
for Dice against the model's mask."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from medviz.imaging.resample import resample_labels
from medviz.io.limits import sniff
from medviz.io.nifti import read_nifti
from medviz.segmentation.export import ExportError
from medviz.segmentation.measure import confusion_map, dice_score
from medviz.types import Volume


def read_reference_mask(name: str, data: bytes, volume: Volume) -> tuple[np.ndarray, list[str]]:
    """A reference mask (NIfTI or DICOM SEG) brought onto ``volume``'s grid through patient geometry.

    Returns:
        ``(labels (Z, Y, X) uint8, notes)``. DICOM SEG segments become labels 1..N.

    Raises:
        ExportError: unreadable file, or a mask that does not overlap the volume.
    """
    kind = sniff(data[:4096] if len(data) > 4096 else data)
    notes: list[str] = []
    try:
        if kind.startswith("dicom"):
            import highdicom as hd

            seg = hd.seg.segread(io.BytesIO(data))
            v = seg.get_volume(combine_segments=True, relabel=True)
            src, aff = np.asarray(v.array), np.asarray(v.affine)
            if src.ndim == 4:
                src = src[..., 0]
            notes.append(f"DICOM SEG with {len(seg.SegmentSequence)} segment(s)")
        else:
            ref = read_nifti(data, name)
            # Volume arrays are (Z, Y, X) with an affine on (x, y, z): permute to (x, y, z) indexing.
            src, aff = np.transpose(np.asarray(ref.array), (2, 1, 0)), np.asarray(ref.affine)
    except (ValueError, KeyError, AttributeError, OSError) as e:
        raise ExportError(f"{name}: cannot read the reference mask ({e})") from e
    if volume.orientation == "unknown" and src.shape in (volume.shape, volume.shape[::-1]):
        notes.append("no patient geometry: the mask was matched by array shape only")
    labels = resample_labels(np.rint(src).astype(np.uint8), aff, volume)
    if not labels.any():
        raise ExportError(f"{name}: the reference mask is empty on this study's grid (different patient or series?)")
    return labels, notes


@dataclass(frozen=True)
class ReferenceComparison:
    """A reference mask on the study grid compared with the model's mask.

    Attributes:
        confusion: ``(Z, Y, X)`` uint8, 1 = agreement, 2 = false positive, 3 = false negative.
        dice: Dice of the model mask against ``reference > 0``.
        notes: what the reader did (e.g. matched by shape only).
    """

    confusion: np.ndarray
    dice: float
    notes: list[str]

    @property
    def reference_slices(self) -> np.ndarray:
        """``(Z,)`` bool: axial slices where the reference mask has foreground (true positives or false negatives)."""
        ref = (self.confusion == 1) | (self.confusion == 3)
        return ref.reshape(ref.shape[0], -1).any(axis=1)


def compare_with_reference(mask: np.ndarray, reference: np.ndarray, notes: list[str]) -> ReferenceComparison:
    """The model's ``(Z, Y, X)`` mask against a reference on the same grid (see :func:`read_reference_mask`)."""
    return ReferenceComparison(confusion_map(mask, reference), dice_score(mask, reference > 0), notes)
