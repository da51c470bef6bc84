"""One DICOM file: parse from bytes and validate it *before* any pixel decoding.

:func:`parse_dicom` reads the data set with pydicom, refuses truncated, oversized or
inconsistent files and transfer syntaxes without an installed decoder, and collects per-frame
geometry: classic single-frame attributes, the Shared/PerFrame functional groups of Enhanced
CT/MR, or RT Dose grid offsets. Pixels are decoded later by :mod:`medviz.io.dicom_pixels`.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from medviz.io import limits as _lim
from medviz.io.dicom_values import (
    first,
    first_value,
    pair,
    plain,
    positive,
    to_float,
    to_int,
    ts_name,
    valid_orientation,
    vector,
)
from medviz.io.quiet import quiet_pydicom

PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_DEFLATE_UID = b"1.2.840.10008.1.2.1.99"
# Modalities whose single images are projections or photos: never stacked into a 3D volume.
PROJECTION_MODALITIES = frozenset(
    {"CR", "DX", "MG", "XA", "RF", "IO", "PX", "OP", "XC", "ES", "GM", "SM", "US", "IVUS", "OPT", "SC", "OT", "DOC"}
)
# Non-image objects that may carry pixel-like data but are not pictures to view.
NON_IMAGE_MODALITIES = frozenset({"SEG", "RTSTRUCT", "RTPLAN", "SR", "KO", "PR", "REG", "RWV", "DOC"})
META_KEYS = (
    "Modality",
    "Manufacturer",
    "ManufacturerModelName",
    "BodyPartExamined",
    "SliceThickness",
    "KVP",
    "EchoTime",
    "RepetitionTime",
    "MagneticFieldStrength",
    "PhotometricInterpretation",
    "BitsStored",
    "Rows",
    "Columns",
    "NumberOfFrames",
    "SeriesNumber",
    "ViewPosition",  # AP, PA, LL, RL...: the classifiers' population check (medviz.classification.population)
)


class NonImageDicom(Exception):
    """A valid DICOM object without an image to show (SR, RTSTRUCT, SEG, DICOMDIR...)."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


@dataclass(frozen=True)
class FrameInfo:
    """Geometry and value mapping of one frame.

    Attributes:
        index: frame number inside its file (0-based).
        position: ImagePositionPatient ``(3,)`` in LPS mm, or None.
        orientation: ImageOrientationPatient ``(6,)`` (row then column direction), or None.
        pixel_spacing: ``(row spacing, column spacing)`` in mm, or None when absent/invalid.
        slope: Rescale Slope (1 when absent or unusable).
        intercept: Rescale Intercept (0 when absent or unusable).
        rescale_problem: why the file's Rescale Slope/Intercept could not be used, in words (None: fine).
        window: ``(center, width)`` from the file, or None.
        order_key: tie-break key for frames at one position (temporal index, acquisition...).
    """

    index: int
    position: np.ndarray | None
    orientation: np.ndarray | None
    pixel_spacing: tuple[float, float] | None
    slope: float = 1.0
    intercept: float = 0.0
    window: tuple[float, float] | None = None
    order_key: tuple[float, ...] = ()
    rescale_problem: str | None = None


@dataclass
class Instance:
    """A parsed DICOM file with an image, not yet decoded."""

    source: str
    ds: Any
    modality: str
    series_uid: str
    sop_uid: str
    series_number: int | None
    instance_number: int | None
    rows: int
    columns: int
    samples: int
    n_frames: int
    photometric: str
    transfer_syntax: str
    frames: list[FrameInfo]
    is_colour: bool
    is_localizer: bool
    slice_spacing_hint: float | None
    spacing_source: str
    warnings: list[str] = field(default_factory=list)
    series_text: str = ""  # how notes and labels name its series (set when series are grouped)

    @property
    def transfer_syntax_name(self) -> str:
        return ts_name(self.transfer_syntax)

    @property
    def has_geometry(self) -> bool:
        return all(f.position is not None and f.orientation is not None for f in self.frames)


# ---- parsing ------------------------------------------------------------------------------


def parse_dicom(source: str, data: bytes) -> Instance:
    """Parse one DICOM file and check it can be decoded, without decoding pixels.

    Args:
        source: the file name as given (used in messages only).
        data: the raw file bytes.

    Returns:
        An :class:`Instance`.

    Raises:
        NonImageDicom: a valid object without pixel data (SR, RTSTRUCT, DICOMDIR...) or a SEG.
        ValueError: not DICOM, truncated, inconsistent or unsupported (clear message).
        medviz.io.limits.InputTooLarge: declared sizes over the limits.
    """
    with quiet_pydicom() as caught:
        ds = _read(data, caught)
        return _classify(source, ds)


def _classify(source: str, ds: Any) -> Instance:
    present = [k for k in PIXEL_KEYWORDS if k in ds]
    modality = str(ds.get("Modality", "") or "").strip().upper()
    if modality in NON_IMAGE_MODALITIES:
        raise NonImageDicom(modality or "non-image")
    if not present:
        if "Rows" in ds and "Columns" in ds and "BitsAllocated" in ds:
            raise ValueError("image attributes are present but Pixel Data is missing (truncated file?)")
        meta = getattr(ds, "file_meta", None)
        sop = ds.get("SOPClassUID") or (meta.get("MediaStorageSOPClassUID") if meta is not None else None)
        kind = modality or (getattr(sop, "name", "") if sop else "") or "no pixel data"
        raise NonImageDicom(str(kind))
    return _instance(source, ds, present[0])


def _read(data: bytes, caught: list) -> Any:
    import pydicom
    from pydicom.errors import InvalidDicomError

    kind = _lim.sniff(data)
    if kind not in ("dicom", "dicom-nopreamble"):
        raise ValueError("not a DICOM file: no 'DICM' marker and no DICOM elements at the start")
    if kind == "dicom":
        _check_after_marker(data[132:])
    if _DEFLATE_UID in data[: 4096 if kind == "dicom" else 0]:
        lim = _lim.limits()
        body_start = _meta_end(data)
        # Bounded trial inflation: pydicom inflates without a cap, so check the size first.
        _lim.inflate_capped(data[body_start:], lim.max_unpacked_bytes, wbits=-15, what="deflated DICOM data set")
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=(kind == "dicom-nopreamble"))
    except InvalidDicomError as e:
        raise ValueError(f"not a DICOM file: {e}") from e
    eof = [w for w in caught if "end of file" in str(w.message).lower()]
    if eof:
        raise ValueError("truncated DICOM: the file ends before the end of an element (e.g. compressed pixel data)")
    if kind == "dicom-nopreamble" and "SOPClassUID" not in ds and not any(k in ds for k in PIXEL_KEYWORDS):
        raise ValueError("not a DICOM file: no preamble and no SOP Class UID or pixel data")
    if _DEFLATE_UID not in data[:4096]:
        _check_truncation(ds, len(data))
    return ds


_OTHER_FORMATS = {"png": "a PNG image", "jpeg": "a JPEG image", "zip": "a zip archive", "gzip": "gzip data",
                  "tiff": "a TIFF image", "gif": "a GIF image", "bmp": "a BMP image", "webp": "a WebP image",
                  "nifti": "a NIfTI image"}


def _check_after_marker(body: bytes) -> None:
    """Refuse a file whose 'DICM' marker is followed by another format or by no DICOM element at all (the
    reader would otherwise report absurd element lengths from the foreign bytes)."""
    other = _OTHER_FORMATS.get(_lim.sniff(body))
    if other:
        raise ValueError(f"not a DICOM file: it has a DICOM marker ('DICM') but holds {other} behind it")
    if len(body) < 8:
        raise ValueError("not a DICOM file: it ends right after its DICOM marker ('DICM')")
    if not _lim.looks_like_raw_dicom(body[:1024]):
        group = int.from_bytes(body[:2], "little")
        raise ValueError(f"not a DICOM file: its DICOM marker ('DICM') is followed by no DICOM element "
                         f"(group {group:04X} where the file meta group 0002 belongs)")


_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT"})


def meta_sop_uid(data: bytes) -> str | None:
    """The MediaStorageSOPInstanceUID (0002,0003) of a Part 10 file, read from its file meta group without a
    DICOM parser (microseconds, for de-duplicating a large upload before anything is parsed); None when the
    file has no preamble or no such element."""
    if len(data) < 140 or data[128:132] != b"DICM":
        return None
    at, end = 132, min(len(data), 132 + 64 * 1024)
    while at + 8 <= end:
        group, elem = int.from_bytes(data[at:at + 2], "little"), int.from_bytes(data[at + 2:at + 4], "little")
        if group != 0x0002:
            return None
        vr = data[at + 4:at + 6]
        if vr in _LONG_VRS:
            length, value = int.from_bytes(data[at + 8:at + 12], "little"), at + 12
        else:
            length, value = int.from_bytes(data[at + 6:at + 8], "little"), at + 8
        if elem == 0x0003:
            uid = data[value:value + length].rstrip(b"\x00 ").decode("ascii", "replace")
            return uid or None
        at = value + length
    return None


def _meta_end(data: bytes) -> int:
    """Byte offset of the data set after the file meta group (uses (0002,0000) group length)."""
    if data[132:134] == b"\x02\x00" and data[134:136] == b"\x00\x00" and data[136:138] == b"UL":
        return 144 + int.from_bytes(data[140:144], "little")
    raise ValueError("deflated DICOM without a (0002,0000) File Meta group length")


def _check_truncation(ds: Any, size: int) -> None:
    """Refuse a file whose last element's declared length runs past the end of the bytes."""
    worst = None
    for elem in ds.elements():
        tell = getattr(elem, "value_tell", None)
        length = getattr(elem, "length", None)
        if tell is None or length is None or length == 0xFFFFFFFF:
            continue
        missing = tell + length - size
        if missing > 0 and (worst is None or missing > worst[0]):
            worst = (missing, elem.tag)
    if worst is None:
        return
    missing, tag = worst
    if tag == 0x7FE00010:
        raise ValueError(f"truncated DICOM: pixel data is {missing:,} bytes short")
    raise ValueError(f"truncated DICOM: the file ends {missing:,} bytes early, inside element {tag}")


def _instance(source: str, ds: Any, pixel_keyword: str) -> Instance:
    from pydicom.uid import UID

    for kw in ("Rows", "Columns", "BitsAllocated", "PhotometricInterpretation"):
        if kw not in ds or ds[kw].value in (None, ""):
            raise ValueError(f"image without the required {kw} attribute")
    rows, cols = int(ds.Rows), int(ds.Columns)
    warn: list[str] = []
    if "SamplesPerPixel" not in ds:
        if not str(ds.PhotometricInterpretation).upper().startswith("MONOCHROME"):
            raise ValueError(f"colour image ({ds.PhotometricInterpretation}) without SamplesPerPixel")
        ds.SamplesPerPixel = 1
        warn.append("SamplesPerPixel missing: 1 assumed for a MONOCHROME image")
    samples = int(ds.SamplesPerPixel)
    frames_raw = ds.get("NumberOfFrames")
    try:
        n_frames = int(frames_raw) if frames_raw not in (None, "") else 1
    except (TypeError, ValueError):
        raise ValueError(f"NumberOfFrames {frames_raw!r} is not an integer") from None
    if n_frames < 1:
        raise ValueError(f"NumberOfFrames is {n_frames}; must be at least 1")
    if samples not in (1, 3):
        raise ValueError(f"SamplesPerPixel {samples} is not supported (1 or 3)")
    _check_photometric(str(ds.PhotometricInterpretation).strip().upper(), samples)
    bits = int(ds.BitsAllocated)
    if bits not in (1, 8, 16, 32, 64):
        raise ValueError(f"BitsAllocated {bits} is not supported")
    _lim.check_voxels((n_frames, rows, cols, samples), "DICOM pixel data")

    ts = _transfer_syntax(ds)
    _check_decoder(ts)
    if not ts.is_compressed:
        warn += _check_native_length(ds, pixel_keyword, n_frames)

    photometric = str(ds.PhotometricInterpretation).strip().upper()
    modality = str(ds.get("Modality", "") or "OT").strip().upper() or "OT"
    frames = _frame_infos(ds, n_frames, warn)
    image_type = [str(v).upper() for v in (ds.get("ImageType") or [])]
    spacing_source = "PixelSpacing"
    if frames and frames[0].pixel_spacing is None:
        imager = pair(ds.get("ImagerPixelSpacing"))
        if imager:
            frames = [_replace_spacing(f, imager) for f in frames]
            spacing_source = "ImagerPixelSpacing"
        else:
            spacing_source = ""
            bad = ds.get("PixelSpacing")
            if bad is not None:
                warn.append(f"PixelSpacing {list(bad)} is not two positive values; 1 mm assumed")
    return Instance(
        source=source,
        ds=ds,
        modality=modality,
        series_uid=str(ds.get("SeriesInstanceUID", "") or ""),
        sop_uid=str(ds.get("SOPInstanceUID", "") or ""),
        series_number=to_int(ds.get("SeriesNumber")),
        instance_number=to_int(ds.get("InstanceNumber")),
        rows=rows,
        columns=cols,
        samples=samples,
        n_frames=n_frames,
        photometric=photometric,
        transfer_syntax=str(UID(ts)),
        frames=frames,
        is_colour=samples == 3 or photometric == "PALETTE COLOR",
        is_localizer="LOCALIZER" in image_type,
        slice_spacing_hint=positive(ds.get("SpacingBetweenSlices")) or positive(ds.get("SliceThickness")),
        spacing_source=spacing_source,
        warnings=warn,
    )


def _check_photometric(photometric: str, samples: int) -> None:
    """Refuse a file whose PhotometricInterpretation contradicts its SamplesPerPixel."""
    grey = photometric.startswith("MONOCHROME") or photometric == "PALETTE COLOR"
    if samples == 3 and grey:
        raise ValueError(f"the file contradicts itself: SamplesPerPixel is 3 (colour) but PhotometricInterpretation "
                         f"is {photometric}, a one-sample encoding")
    if samples == 1 and not grey:
        raise ValueError(f"the file contradicts itself: PhotometricInterpretation is {photometric}, a colour "
                         "encoding, but SamplesPerPixel is 1")


def _transfer_syntax(ds: Any) -> Any:
    from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    if ts:
        return UID(str(ts))
    implicit, little = getattr(ds, "original_encoding", (None, None))
    if ds["PixelData"].is_undefined_length if "PixelData" in ds else False:
        raise ValueError("compressed pixel data but no TransferSyntaxUID in the file meta")
    uid = (
        ImplicitVRLittleEndian if implicit else (ExplicitVRLittleEndian if little is not False else ExplicitVRBigEndian)
    )
    if meta is None:
        from pydicom.dataset import FileMetaDataset

        ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = uid
    return uid


def _check_decoder(ts: Any) -> None:
    """Refuse a transfer syntax pydicom cannot decode here, naming what is missing."""
    from pydicom.pixels import get_decoder

    try:
        decoder = get_decoder(ts)
    except NotImplementedError:
        name = ts.name if ts.is_transfer_syntax else "unknown"
        raise ValueError(f"unsupported transfer syntax {ts} ({name}): no pixel decoder exists for it") from None
    if not decoder_available(decoder):
        missing = "; ".join(decoder.missing_dependencies) or "no plugin available"
        raise ValueError(f"no decoder installed for transfer syntax {ts.name} ({ts}): {missing}")


def decoder_available(decoder: Any) -> bool:
    """Whether a pydicom decoder can run here (a seam for tests)."""
    return bool(decoder.is_available)


def _check_native_length(ds: Any, keyword: str, n_frames: int) -> list[str]:
    """Compare the uncompressed pixel data length with Rows×Columns×frames×samples×bits."""
    from pydicom.pixels.utils import get_expected_length

    elem = ds.get_item(keyword)
    raw = elem.value if elem is not None else None
    actual = len(raw) if raw is not None else 0
    if keyword == "PixelData":
        expected = get_expected_length(ds, "bytes")
    else:
        bytes_per = 4 if keyword == "FloatPixelData" else 8
        expected = int(ds.Rows) * int(ds.Columns) * n_frames * int(ds.get("SamplesPerPixel") or 1) * bytes_per
    dims = f"{n_frames}×{int(ds.Rows)}×{int(ds.Columns)}"
    if actual < expected:
        raise ValueError(
            f"truncated DICOM: pixel data is {expected - actual:,} bytes short "
            f"({actual:,} of {expected:,} bytes for {dims} frames×rows×columns)"
        )
    extra = actual - expected - (expected % 2)
    if extra > 0:
        hint = "; NumberOfFrames may be missing" if "NumberOfFrames" not in ds and actual >= 2 * expected else ""
        return [f"pixel data holds {extra:,} bytes more than {dims} needs; the extra data was ignored{hint}"]
    return []


def _warn_invalid(warnings: list[str], keyword: str, raw: Any, parsed: Any, expected: str) -> None:
    """Warn (once per file) when ``keyword`` is present but unusable, instead of dropping it silently."""
    if raw is None or parsed is not None:
        return
    try:
        shown = "\\".join(str(v).strip() for v in raw) if not isinstance(raw, str | bytes) else str(raw)
    except TypeError:
        shown = str(raw)
    shown = shown[:80] or "(empty)"
    text = (f"{keyword} is not valid ({shown}; expected {expected}): the image is shown without patient geometry, "
            "so it is not placed in 3D")
    if text not in warnings:
        warnings.append(text)


def _frame_infos(ds: Any, n_frames: int, warnings: list[str]) -> list[FrameInfo]:
    shared = first(ds.get("SharedFunctionalGroupsSequence"))
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    if per_frame and len(per_frame) != n_frames:
        raise ValueError(f"PerFrameFunctionalGroupsSequence has {len(per_frame)} items for {n_frames} frames")
    grid = ds.get("GridFrameOffsetVector")
    out = []
    for i in range(n_frames):
        item = per_frame[i] if per_frame else None

        def attr(seq: str, kw: str, _item: Any = item) -> Any:
            for group in (_item, shared):
                sub = first(group.get(seq)) if group is not None else None
                if sub is not None and kw in sub:
                    return sub.get(kw)
            return ds.get(kw)

        raw_pos = attr("PlanePositionSequence", "ImagePositionPatient")
        raw_ori = attr("PlaneOrientationSequence", "ImageOrientationPatient")
        pos, ori = vector(raw_pos, 3), vector(raw_ori, 6)
        if ori is not None and not valid_orientation(ori):
            ori = None
        _warn_invalid(warnings, "ImageOrientationPatient", raw_ori, ori, "six numbers: two orthogonal unit vectors")
        _warn_invalid(warnings, "ImagePositionPatient", raw_pos, pos, "three numbers in mm")
        if n_frames > 1 and not per_frame and pos is not None:
            if grid is not None and len(grid) == n_frames and ori is not None:
                normal = np.cross(ori[:3], ori[3:])
                pos = pos + float(grid[i]) * normal  # RT Dose: offsets along the normal
            else:
                pos = None  # one position for many frames: per-frame geometry unknown
        spacing = pair(attr("PixelMeasuresSequence", "PixelSpacing"))
        slope, intercept, rescale_problem = _rescale(attr("PixelValueTransformationSequence", "RescaleSlope"),
                                                     attr("PixelValueTransformationSequence", "RescaleIntercept"))
        center = to_float(first_value(attr("FrameVOILUTSequence", "WindowCenter")), math.nan)
        width = to_float(first_value(attr("FrameVOILUTSequence", "WindowWidth")), math.nan)
        window = (center, width) if math.isfinite(center) and math.isfinite(width) and width > 0 else None
        content = first(item.get("FrameContentSequence")) if item is not None else None
        temporal = to_float(content.get("TemporalPositionIndex") if content is not None else None, math.inf)
        order_key = (
            temporal,
            to_float(ds.get("TemporalPositionIdentifier"), math.inf),
            to_float(ds.get("AcquisitionNumber"), math.inf),
            to_float(ds.get("TriggerTime"), math.inf),
            to_float(ds.get("InstanceNumber"), math.inf),
            float(i),
        )
        out.append(FrameInfo(i, pos, ori, spacing, slope, intercept, window, order_key, rescale_problem))
    return out


def _rescale(raw_slope: Any, raw_intercept: Any) -> tuple[float, float, str | None]:
    """``(slope, intercept, problem)``: the file's Rescale Slope/Intercept, or ``(1, 0, why)`` when either is
    present but unusable (not a number, NaN, infinite, or a zero slope) — never a silent 1."""
    problems = []
    slope = 1.0 if raw_slope is None else to_float(raw_slope, math.nan)
    if not math.isfinite(slope) or slope == 0:
        problems.append(f"Rescale Slope {str(raw_slope).strip()!r} is not usable")
    intercept = 0.0 if raw_intercept is None else to_float(raw_intercept, math.nan)
    if not math.isfinite(intercept):
        problems.append(f"Rescale Intercept {str(raw_intercept).strip()!r} is not usable")
    if problems:
        return 1.0, 0.0, " and ".join(problems)
    return slope, intercept, None


def _replace_spacing(f: FrameInfo, spacing: tuple[float, float]) -> FrameInfo:
    return replace(f, pixel_spacing=spacing)


# ---- metadata -----------------------------------------------------------------------------


AGE_UNITS = {"D": 1 / 365.25, "W": 7 / 365.25, "M": 1 / 12, "Y": 1.0}


def age_in_years(value: Any) -> float | None:
    """A DICOM Age String (``nnnD``, ``nnnW``, ``nnnM``, ``nnnY``, e.g. ``"045Y"``, ``"018M"``) in years;
    None when absent or not in that form."""
    text = str(value or "").strip().upper()
    if len(text) < 2 or text[-1] not in AGE_UNITS or not text[:-1].isdigit():
        return None
    return int(text[:-1]) * AGE_UNITS[text[-1]]


def safe_meta(inst: Instance) -> dict[str, Any]:
    """Non-identifying metadata of ``inst`` (keys in :data:`META_KEYS` plus transfer syntax)."""
    ds = inst.ds
    meta: dict[str, Any] = {}
    for kw in META_KEYS:
        value = ds.get(kw)
        if value not in (None, ""):
            meta[kw] = plain(value)
    meta["Modality"] = inst.modality
    age = age_in_years(ds.get("PatientAge"))
    if age is not None:  # ages above 89 are grouped as 90, as HIPAA Safe Harbor asks: an exact old age identifies
        meta["PatientAgeYears"] = min(round(age, 2), 90.0)
    meta["TransferSyntax"] = inst.transfer_syntax_name
    w = inst.frames[0].window if inst.frames else None
    if w is not None:
        meta["WindowCenter"], meta["WindowWidth"] = w
    return meta
