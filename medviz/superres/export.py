"""Exports of a super-resolved slice as bytes (for ``st.download_button``), each one labelled synthetic.

Every output of the super-resolution arms (bicubic included) is computed, not acquired, so every export says
so in a way that survives the file leaving MedViz:

* PNG (:func:`png_bytes`): the label is **burned into the pixels**, white text on a dark band over the top rows
  (images narrower than :data:`MIN_LABELLED_WIDTH` are first enlarged by a whole factor, nearest neighbour, so
  the text is legible), and repeated in the PNG text chunks ``Disclaimer`` and ``Warning``.
* NIfTI (:func:`nifti_bytes`): the header ``descrip`` starts with ``SYNTHETIC`` and the file name
  (:func:`nifti_file_name`) starts with ``SYNTHETIC_``.
* DICOM (:func:`dicom_bytes`): a Secondary Capture image with ``SyntheticData`` (0008,001C) ``YES``, ``ImageType``
  ``DERIVED\\SECONDARY``, ``ConversionType`` ``SYN`` (synthetic image), a ``SeriesDescription`` starting with
  ``SYNTHETIC`` and a ``DerivationDescription`` saying how it was made; the label is burned in as well
  (``BurnedInAnnotation`` ``YES``). It gets a new SeriesInstanceUID and SOPInstanceUID, never the source's, so
  a synthetic series can never replace the real one in a PACS; only the patient and study identity are copied
  from the source header (same StudyInstanceUID: it files under the same study).

Images are ``(H, W)`` float arrays in ``[0, 1]`` (:func:`medviz.superres.data.scale_to_max`); row 0 is the top.
Nothing here writes files.
"""

from __future__ import annotations

import datetime
import gzip
import io
import re
from typing import Any

import numpy as np

from medviz.constants import WindowPreset
from medviz.imaging.windowing import window_to_uint8
from medviz.io.nifti_write import RAS_FROM_LPS
from medviz.superres.degrade import SCALE
from medviz.types import MedvizError

#: The label every synthetic image carries (burned into PNG and DICOM pixels, shown on the page).
SYNTHETIC_LABEL = "SYNTHETIC — NOT FOR DIAGNOSIS"
#: The same words in plain ASCII, for header fields limited to the default character repertoire.
SYNTHETIC_ASCII = "SYNTHETIC - NOT FOR DIAGNOSIS"
#: PNG exports narrower than this (pixels) are enlarged by a whole factor first, so the burned-in text is legible.
MIN_LABELLED_WIDTH = 512
#: The NIfTI ``descrip`` field holds 80 bytes; we write at most 79 (a C string with its terminating NUL).
NIFTI_DESCRIP_BYTES = 79
#: The dark band behind a burned-in label, as a fraction of white.
BAND_FRACTION = 0.1
#: DICOM pixel values: the image's ``[0, 1]`` mapped onto ``0..DICOM_MAX`` (12 bits stored in 16).
DICOM_BITS_STORED = 12
DICOM_MAX = 2 ** DICOM_BITS_STORED - 1
#: Series number of exported synthetic series (high, away from the scanner's own numbers).
SYNTHETIC_SERIES_NUMBER = 901
#: Patient and study identity copied from a source header: the synthetic image files under the same study.
IDENTITY_KEYWORDS = ("PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex",
                     "StudyInstanceUID", "StudyDate", "StudyTime", "StudyID", "AccessionNumber",
                     "ReferringPhysicianName", "StudyDescription")
_TYPE_2 = frozenset(IDENTITY_KEYWORDS) - {"IssuerOfPatientID", "StudyInstanceUID", "StudyDescription"}  # present, maybe empty
_DICOM_LO = 64  # characters of a DICOM LO value (SeriesDescription, ManufacturerModelName)
_DICOM_ST = 1024  # characters of a DICOM ST value (DerivationDescription)


class SuperResExportError(MedvizError):
    """A super-resolved image that cannot be exported (not one 2D slice, a label that does not say synthetic)."""


def _as_image(image01: np.ndarray) -> np.ndarray:
    """``(H, W)`` float32 in ``[0, 1]`` (NaN -> 0, clipped), a new array (the caller's is never modified)."""
    a = np.asarray(image01, dtype=np.float32)
    if a.ndim != 2 or a.size == 0:
        raise SuperResExportError(f"an export needs one 2D image (height x width), not an array of shape {a.shape}")
    return np.clip(np.nan_to_num(a, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)


def _check_label(label: str) -> str:
    if "SYNTHETIC" not in str(label).upper():
        raise SuperResExportError(f"the label of a synthetic image must say SYNTHETIC, not {label!r}")
    return str(label)


def display_uint8(image01: np.ndarray, window: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """``(H, W)`` uint8 grey levels of an image in ``[0, 1]`` through the display window ``(lo, hi)``
    (``lo -> 0``, ``hi -> 255``, clipped outside; the same window the page shows)."""
    lo, hi = float(window[0]), float(window[1])
    return window_to_uint8(_as_image(image01), WindowPreset("display", hi - lo, (lo + hi) / 2))


def _font(size: int) -> Any:
    from PIL import ImageFont

    return ImageFont.load_default(size=size)  # Pillow's bundled TrueType font when FreeType is there


def _drawable(label: str) -> str:
    """``label`` with the dashes Pillow's bundled font has no glyph for (it draws a box) as ``-``."""
    return str(label).replace("\u2014", "-").replace("\u2013", "-")


def burn_label(pixels: np.ndarray, label: str = SYNTHETIC_LABEL, white: int = 255) -> np.ndarray:
    """A copy of a ``(H, W)`` grey image (uint8 or uint16) with ``label`` drawn in ``white`` on a dark band over
    its top rows.

    The text is as large as the width allows (at most 1/16 of the height and 48 px, at least 8 px); the band is
    1.6 text heights tall and 10 % of ``white``. Dashes are drawn as ``-`` (the bundled font has no em dash).
    ``pixels`` is not modified.

    Returns:
        An array of the same shape and dtype.
    """
    from PIL import Image, ImageDraw

    p = np.asarray(pixels)
    if p.ndim != 2 or p.dtype not in (np.uint8, np.uint16):
        raise SuperResExportError(f"the label is burned into one (H, W) uint8 or uint16 image, not {p.shape} {p.dtype}")
    text = _drawable(label)
    h, w = p.shape
    size = max(8, min(h // 16, 48))
    while size > 8 and _font(size).getlength(text) > w - size:
        size -= 1
    font = _font(size)
    band = min(h, int(round(size * 1.6)))
    img = Image.fromarray(p.astype(np.int32))  # 32-bit grey: one drawing path for 8 and 16 bits
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, w - 1, band - 1), fill=int(white * BAND_FRACTION))
    draw.text((max(1.0, (w - font.getlength(text)) / 2), band / 2), text, fill=int(white), font=font, anchor="lm")
    return np.asarray(img).astype(p.dtype)


def png_bytes(image01: np.ndarray, label: str = SYNTHETIC_LABEL, window: tuple[float, float] = (0.0, 1.0),
              description: str = "") -> bytes:
    """The image as a grey PNG with ``label`` burned in and in its text chunks.

    Args:
        image01: ``(H, W)`` float in ``[0, 1]``.
        label: the burned-in words; must contain ``SYNTHETIC``.
        window: display window ``(lo, hi)`` in the image's ``[0, 1]`` units (the page's shared window).
        description: how the image was made (PNG ``Description`` chunk), e.g. the model's name.

    Returns:
        PNG bytes of ``(k H, k W)`` pixels, ``k = ceil(MIN_LABELLED_WIDTH / W)`` (1 when ``W`` is wide enough).

    Raises:
        SuperResExportError: not one 2D image, or a label without ``SYNTHETIC``.
    """
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    label = _check_label(label)
    grey = display_uint8(image01, window)
    k = max(1, int(np.ceil(MIN_LABELLED_WIDTH / grey.shape[1])))
    if k > 1:
        grey = np.repeat(np.repeat(grey, k, axis=0), k, axis=1)
    info = PngInfo()
    info.add_text("Disclaimer", label)
    info.add_text("Warning", label)
    info.add_text("Software", "MedViz")
    if description:
        info.add_text("Description", description)
    buf = io.BytesIO()
    Image.fromarray(burn_label(grey, label)).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def nifti_description(model_name: str) -> str:
    """The NIfTI ``descrip``: ``"SYNTHETIC - NOT FOR DIAGNOSIS (medviz <model>)"`` in ASCII, cut to
    :data:`NIFTI_DESCRIP_BYTES` (the model name is shortened, never the warning)."""
    head = f"{SYNTHETIC_ASCII} (medviz "
    room = NIFTI_DESCRIP_BYTES - len(head) - 1
    model = str(model_name).encode("ascii", "replace").decode("ascii")
    if len(model) > room:
        model = model[: room - 3] + "..."
    return f"{head}{model})"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("_.") or "model"


def export_file_name(model_name: str, extension: str, slice_number: int | None = None) -> str:
    """``SYNTHETIC_sr4x_<model>[_slice012].<extension>``: the file name says synthetic too.

    Args:
        model_name: what made the image (a model or arm name; unsafe characters become ``_``).
        extension: without the dot (``png``, ``nii.gz``, ``dcm``).
        slice_number: the 1-based slice number of the source, when there is one.
    """
    where = f"_slice{int(slice_number):03d}" if slice_number is not None else ""
    return f"SYNTHETIC_sr{SCALE}x_{_safe(model_name)}{where}.{extension.lstrip('.')}"


def nifti_file_name(model_name: str, slice_number: int | None = None, compress: bool = True) -> str:
    """The NIfTI file name (:func:`export_file_name`, ``.nii.gz`` or ``.nii``)."""
    return export_file_name(model_name, "nii.gz" if compress else "nii", slice_number)


def nifti_bytes(image01: np.ndarray, model_name: str, spacing_mm: tuple[float, float] | None = None,
                peak: float = 1.0, compress: bool = True) -> bytes:
    """The image as a one-slice NIfTI-1 whose ``descrip`` says SYNTHETIC (:func:`nifti_description`).

    Args:
        image01: ``(H, W)`` float in ``[0, 1]``; stored float32 as ``image01 * peak``, NIfTI axes ``(X, Y, 1)``
            (columns, rows), the affine converted from LPS like every MedViz NIfTI.
        model_name: what made the image (in ``descrip``).
        spacing_mm: ``(row, column)`` pixel spacing in mm, when known (default 1 mm).
        peak: the source value of 1.0 (the slice maximum of :func:`~medviz.superres.data.scale_to_max`), so the
            values are in the source's units; 1 keeps ``[0, 1]``.
        compress: gzip the bytes (``.nii.gz``; gzip mtime 0, so equal inputs give equal bytes).

    Raises:
        SuperResExportError: not one 2D image, or a non-positive spacing or peak.
    """
    import nibabel as nib

    img = _as_image(image01)
    sy, sx = (float(v) for v in (spacing_mm or (1.0, 1.0)))
    if not (sy > 0 and sx > 0 and np.isfinite(sy + sx)):
        raise SuperResExportError(f"the pixel spacing must be positive millimetres, not {spacing_mm}")
    if not (float(peak) > 0 and np.isfinite(peak)):
        raise SuperResExportError(f"the intensity peak must be a positive number, not {peak}")
    data = np.ascontiguousarray((img * np.float32(peak)).T[:, :, None])
    nii = nib.Nifti1Image(data, RAS_FROM_LPS @ np.diag([sx, sy, 1.0, 1.0]))
    nii.set_sform(nii.affine, code=2)  # aligned to this image's grid, not to scanner coordinates
    nii.set_qform(nii.affine, code=2)
    nii.header.set_xyzt_units("mm")
    nii.header["descrip"] = nifti_description(model_name).encode("ascii")
    raw = nii.to_bytes()
    return gzip.compress(raw, compresslevel=6, mtime=0) if compress else raw


def series_description(model_name: str) -> str:
    """``"SYNTHETIC 4x SR (<model>)"``, cut to a DICOM LO value (64 characters), always starting ``SYNTHETIC``."""
    return f"SYNTHETIC {SCALE}x SR ({model_name})"[:_DICOM_LO]


def dicom_bytes(image01: np.ndarray, source: Any | None, model_name: str, *,
                derivation: str = "", window: tuple[float, float] = (0.0, 1.0),
                pixel_spacing_mm: tuple[float, float] | None = None, burn_in: bool = True) -> bytes:
    """The image as a DICOM Secondary Capture image (pydicom), marked synthetic (see the module docstring).

    Args:
        image01: ``(H, W)`` float in ``[0, 1]``; stored as unsigned 12-bit values ``round(image01 * 4095)``.
        source: a header of the source study (a pydicom Dataset, e.g. ``volume.dicom_headers[0]``) or None;
            only :data:`IDENTITY_KEYWORDS` are copied from it (and its character set). Without it the
            image gets a new study and empty patient fields.
        model_name: what made the image (SeriesDescription, ManufacturerModelName).
        derivation: how it was made, in words (DerivationDescription; a generic sentence when empty).
        window: the display window ``(lo, hi)`` in ``[0, 1]``, written as WindowCenter / WindowWidth.
        pixel_spacing_mm: ``(row, column)`` spacing in mm, when known.
        burn_in: also burn :data:`SYNTHETIC_LABEL` into the pixels (BurnedInAnnotation YES).

    Returns:
        The bytes of a DICOM Part 10 file (explicit VR little endian).

    Raises:
        SuperResExportError: not one 2D image.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import (
        PYDICOM_IMPLEMENTATION_UID,
        ExplicitVRLittleEndian,
        SecondaryCaptureImageStorage,
        generate_uid,
    )

    img = _as_image(image01)
    pixels = np.rint(img * DICOM_MAX).astype(np.uint16)
    if burn_in:
        pixels = burn_label(pixels, SYNTHETIC_LABEL, white=DICOM_MAX)
    now = datetime.datetime.now()
    sop_uid, series_uid = generate_uid(), generate_uid()

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    if source is not None and source.get("SpecificCharacterSet"):
        ds.SpecificCharacterSet = source.SpecificCharacterSet
    # Patient and study: copied from the source (type 2: present, empty when unknown).
    for kw in IDENTITY_KEYWORDS:
        value = source.get(kw) if source is not None else None
        if value is not None and value != "":
            setattr(ds, kw, value)
        elif kw in _TYPE_2:
            setattr(ds, kw, "")
    if not ds.get("StudyInstanceUID"):
        ds.StudyInstanceUID = generate_uid()
    # SOP common, series, equipment: all new, never the source's.
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.SeriesInstanceUID = series_uid
    ds.Modality = "OT"
    ds.SeriesNumber = SYNTHETIC_SERIES_NUMBER
    ds.SeriesDescription = series_description(model_name)
    ds.SeriesDate = ds.ContentDate = ds.DateOfSecondaryCapture = now.strftime("%Y%m%d")
    ds.SeriesTime = ds.ContentTime = ds.TimeOfSecondaryCapture = now.strftime("%H%M%S")
    ds.Manufacturer = "MedViz"
    ds.ManufacturerModelName = str(model_name)[:_DICOM_LO]
    ds.SoftwareVersions = "medviz"
    ds.ConversionType = "SYN"  # SC Equipment: synthetic image
    # General image: derived, synthetic, how it was made.
    ds.InstanceNumber = 1
    orientation = source.get("PatientOrientation") if source is not None else None
    ds.PatientOrientation = orientation if orientation else ""
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.SyntheticData = "YES"
    ds.DerivationDescription = (derivation or f"{SYNTHETIC_ASCII}: {SCALE}x super-resolution of a low-resolution "
                                f"image by {model_name} (MedViz); structure in it may not exist in the patient.")[:_DICOM_ST]
    ds.BurnedInAnnotation = "YES" if burn_in else "NO"
    ds.LossyImageCompression = "00"
    # Image pixel.
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = (int(v) for v in pixels.shape)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, DICOM_BITS_STORED, DICOM_BITS_STORED - 1
    ds.PixelRepresentation = 0
    lo, hi = float(window[0]), float(window[1])
    ds.WindowCenter = f"{(lo + hi) / 2 * DICOM_MAX:.1f}"
    ds.WindowWidth = f"{max(hi - lo, 1e-3) * DICOM_MAX:.1f}"
    if pixel_spacing_mm is not None:
        ds.PixelSpacing = [f"{float(v):.6g}" for v in pixel_spacing_mm]
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()
