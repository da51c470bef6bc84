"""Decode the pixels of a parsed DICOM instance to float32 (grayscale) or RGB uint8.

Grayscale: modality LUT applied (Rescale Slope/Intercept in float32, per frame when the
functional groups carry it; a Modality LUT Sequence through ``pydicom.pixels.apply_modality_lut``).
CT with RescaleType absent or ``HU`` has units ``"HU"``. MONOCHROME1 is inverted so that higher
values are brighter: ``v' = lo + hi - v`` with ``[lo, hi]`` the stored-value range (BitsStored,
PixelRepresentation) mapped through the rescale. Colour (RGB, YBR_*, PALETTE COLOR) becomes RGB
uint8 through ``convert_color_space`` / ``apply_color_lut``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from medviz.io.dicom import Instance
from medviz.io.dicom_values import first
from medviz.io.finite import replace_non_finite
from medviz.io.quiet import quiet_pydicom

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decoded:
    """Decoded frames of one file.

    Attributes:
        array: ``(F, R, C)`` float32 or ``(F, R, C, 3)`` uint8.
        units: ``"HU"``, ``"a.u."`` or ``"RGB"``.
        inverted: True when MONOCHROME1 was inverted (``v' = lo + hi - v``).
        invert_sum: ``lo + hi`` used for the inversion (to map window centres), else None.
        notes: warnings raised by the decoder (e.g. excess padding), for ``Volume.warnings``.
    """

    array: np.ndarray
    units: str
    inverted: bool = False
    invert_sum: float | None = None
    notes: tuple[str, ...] = ()


def decode_pixels(inst: Instance) -> Decoded:
    """Decode all frames of ``inst`` (checks were done by :func:`parse_dicom`).

    Raises:
        ValueError: unsupported colour space. Decoder plug-ins raise various exception types on
            corrupt data; the caller's per-file boundary turns them into a FileProblem.
    """
    from pydicom.pixels import get_decoder

    ds = inst.ds
    with quiet_pydicom() as caught:
        try:
            arr, props = get_decoder(ds.file_meta.TransferSyntaxUID).as_array(ds, as_rgb=True,
                                                                                allow_excess_frames=False)
        except (RuntimeError, NotImplementedError, OSError, IndexError, KeyError, TypeError, AttributeError) as e:
            log.debug("pixel decoder failed: %s", e)  # the plug-ins' own text: for the server log, not the page
            raise ValueError(_decoder_failure(inst)) from None
    reported_extra = any("extra data" in w for w in inst.warnings)
    notes = tuple(
        dict.fromkeys(
            f"decoder: {str(w.message).splitlines()[0][:200]}"
            for w in caught
            if "pixels" in str(w.filename) and not (reported_extra and "padding" in str(w.message))
        )
    )
    photometric = str(props.get("photometric_interpretation", inst.photometric)).upper()
    frame_shape = (inst.rows, inst.columns) + ((3,) if inst.samples == 3 else ())
    if arr.shape == frame_shape:
        arr = arr[np.newaxis]
    if arr.shape != (inst.n_frames, *frame_shape):
        raise ValueError(f"pixel data decoded to shape {arr.shape}, expected {(inst.n_frames, *frame_shape)}")
    if inst.is_colour:
        return Decoded(_to_rgb(arr, ds, photometric), "RGB", notes=notes)
    scalar = _to_scalar(arr, inst)
    return replace(scalar, notes=scalar.notes + notes)


def _decoder_failure(inst: Instance) -> str:
    """Why decoding failed, in words, from what the file declares (the decoders' messages are internal)."""
    bits = inst.ds.get("BitsStored")
    variant = f" ({inst.transfer_syntax_name}, {bits}-bit samples)" if bits else f" ({inst.transfer_syntax_name})"
    from pydicom.uid import UID

    if UID(inst.transfer_syntax).is_compressed:
        return (f"no installed decoder could read the compressed pixel data{variant}: the data is corrupt, or it "
                "uses a variant of the format that the decoders do not support")
    return f"the pixel data could not be read{variant}: its layout does not match the image attributes"


class _LutError(ValueError):
    """A colour palette or modality LUT that does not fit the pixel values (message in words)."""


def _apply_lut(apply: Any, arr: np.ndarray, ds: Any, what: str) -> np.ndarray:
    """``apply(arr, ds)`` for a pydicom LUT function; a LUT that is short, empty or has an invalid
    descriptor becomes a message in words instead of the library's index or type error."""
    try:
        return apply(arr, ds)
    except (IndexError, KeyError, TypeError, ValueError, AttributeError) as e:
        log.debug("%s could not be applied: %s", what, e)
        raise _LutError(f"the file's {what} cannot be applied to its pixel values: its descriptor or data is "
                        "invalid (e.g. a table shorter than declared, or an entry size of 0 bits)") from None


def _to_rgb(arr: np.ndarray, ds: Any, photometric: str) -> np.ndarray:
    from pydicom.pixels import apply_color_lut, convert_color_space

    if photometric == "PALETTE COLOR":
        arr = _apply_lut(apply_color_lut, arr, ds, "colour palette (Palette Color LUT)")
    elif photometric in ("YBR_FULL", "YBR_FULL_422"):
        arr = convert_color_space(arr, photometric, "RGB")
    elif photometric != "RGB" and not photometric.startswith("YBR_RCT") and not photometric.startswith("YBR_ICT"):
        raise ValueError(f"colour space {photometric} is not supported")
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"colour pixel data decoded to an unexpected shape {arr.shape}")
    if arr.dtype != np.uint8:
        top = float(np.iinfo(arr.dtype).max) if arr.dtype.kind in "ui" else float(arr.max() or 1.0)
        if photometric == "PALETTE COLOR" or arr.dtype.kind not in "ui":
            scale = 255.0 / top
        else:
            scale = 255.0 / (2 ** int(ds.get("BitsStored") or 16) - 1)
        arr = np.clip(np.rint(arr.astype(np.float32) * scale), 0, 255).astype(np.uint8)
    return arr


FLOAT32_MAX = float(np.finfo(np.float32).max)


def _rescaled(arr: np.ndarray, inst: Instance) -> np.ndarray:
    """``arr * slope + intercept`` per frame as float32, computed in float64 so that a rescale beyond the
    float32 range is caught instead of becoming ±Inf.

    Raises:
        ValueError: the rescaled values cannot be held in 32-bit floats (the message gives the numbers).
    """
    out = np.empty(arr.shape, dtype=np.float32)
    for k, f in enumerate(inst.frames):
        v = arr[k].astype(np.float64) * f.slope + f.intercept
        peak = float(np.nanmax(np.abs(v))) if v.size else 0.0
        if peak > FLOAT32_MAX:
            raise ValueError(f"Rescale Slope {f.slope:g} and Intercept {f.intercept:g} give values up to {peak:.3g}, "
                             "beyond what 32-bit floats can hold: the values cannot be shown")
        out[k] = v
    return out


MAX_PLAUSIBLE_HU = 30_000  # beyond dense metal on extended-scale CT


def _signedness_note(values: np.ndarray, units: str, signed: bool) -> tuple[str, ...]:
    """A warning when unsigned CT data give values no tissue or metal has: negative numbers (air, fat)
    stored as signed but declared unsigned by PixelRepresentation 0 come out near +65,000 HU."""
    if units != "HU" or signed or not values.size:
        return ()
    peak = float(np.nanmax(values))
    if peak <= MAX_PLAUSIBLE_HU:
        return ()
    share = float(np.mean(values > MAX_PLAUSIBLE_HU))
    return (f"values up to {peak:,.0f} HU ({share:.0%} of voxels above {MAX_PLAUSIBLE_HU:,} HU) are beyond any "
            "tissue or metal: PixelRepresentation 0 (unsigned) looks wrong for this file, whose data are probably "
            "signed; the values are shown as stored, and are likely wrong",)


def _to_scalar(arr: np.ndarray, inst: Instance) -> Decoded:
    from pydicom.pixels import apply_modality_lut

    ds = inst.ds
    if ds.get("ModalityLUTSequence"):
        out = _apply_lut(apply_modality_lut, arr, ds, "Modality LUT").astype(np.float32)
    else:
        out = _rescaled(arr, inst)
    out, non_finite = replace_non_finite(out)
    rescale_type = str(ds.get("RescaleType", "") or "").upper()
    shared = first(ds.get("SharedFunctionalGroupsSequence"))
    pvt = first(shared.get("PixelValueTransformationSequence")) if shared is not None else None
    if pvt is not None and pvt.get("RescaleType"):
        rescale_type = str(pvt.RescaleType).upper()
    has_rescale = "RescaleIntercept" in ds or pvt is not None or bool(ds.get("ModalityLUTSequence"))
    signed = int(ds.get("PixelRepresentation") or 0) == 1
    units = "HU" if inst.modality == "CT" and rescale_type in ("", "HU") and (has_rescale or signed) else "a.u."
    notes: tuple[str, ...] = ()
    problems = sorted({f.rescale_problem for f in inst.frames if f.rescale_problem})
    if problems:  # the stored values are shown as they are: they are not calibrated (not HU)
        units = "a.u."
        notes = (f"{'; '.join(problems)}: the stored pixel values are shown without rescaling, so they are "
                 "not calibrated values (not HU); units shown as a.u.",)
    elif inst.modality == "CT" and units != "HU":
        why = f"RescaleType is {rescale_type}" if rescale_type else "no Rescale Slope/Intercept and unsigned pixels"
        notes = (f"CT values are not Hounsfield units ({why}); units shown as a.u.",)
    if non_finite:
        notes += (non_finite,)
    notes += _signedness_note(out, units, signed)
    if inst.photometric != "MONOCHROME1":
        return Decoded(out, units, notes=notes)
    if ds.get("ModalityLUTSequence"):
        lo, hi = float(np.nanmin(out)), float(np.nanmax(out))
    else:
        bits = int(ds.get("BitsStored") or ds.BitsAllocated)
        signed = int(ds.get("PixelRepresentation") or 0) == 1
        smin, smax = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
        f0 = inst.frames[0]
        lo, hi = sorted((smin * f0.slope + f0.intercept, smax * f0.slope + f0.intercept))
    total = np.float32(lo + hi)
    np.subtract(total, out, out=out)
    return Decoded(out, units, inverted=True, invert_sum=float(total), notes=notes)
