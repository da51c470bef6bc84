"""Helpers for the AppTest page tests: synthetic uploads (DICOM series, PNG) and chart decoding.

Imported by name (``from apptest_helpers import ...``): pytest puts this folder on ``sys.path``.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
VIEWER = str(ROOT / "pages" / "viewer.py")
ABOUT = str(ROOT / "pages" / "about.py")
APP = str(ROOT / "app.py")
TIMEOUT = 60  # s per AppTest run; the 2 CPU cores are shared


def dicom_series(
    n_slices: int = 3, rows: int = 32, cols: int = 24, series: int = 1, seed: int = 0
) -> list[tuple[str, bytes, str]]:
    """A synthetic axial CT series as upload tuples ``(name, bytes, mime)`` (no extension).

    Pixel spacing 0.7 x 0.5 mm, 2.5 mm between slices, HU = stored value - 1024, and a bright
    500 HU square in the anterior-left quarter of every slice.
    """
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    rng = np.random.default_rng(seed)
    series_uid, study_uid, frame_uid = generate_uid(), generate_uid(), generate_uid()
    out = []
    for k in range(n_slices):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.Manufacturer = "CT", "SYNTHETIC"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
        ds.SeriesNumber, ds.InstanceNumber = series, k + 1
        ds.ImagePositionPatient = [-10.0, -20.0, 100.0 + 2.5 * k]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing, ds.SliceThickness = [0.7, 0.5], 2.5
        ds.Rows, ds.Columns = rows, cols
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        pixels = (rng.integers(900, 1100, size=(rows, cols)) + 10 * k).astype(np.int16)
        pixels[2:8, cols - 8 : cols - 2] = 1524
        ds.PixelData = pixels.tobytes()
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        out.append((f"series{series}/IM{k:04d}", buf.getvalue(), "application/octet-stream"))
    return out


def png_upload(name: str = "photo.png", shape: tuple[int, int] = (40, 60)) -> tuple[str, bytes, str]:
    """A greyscale PNG with a horizontal ramp."""
    from PIL import Image

    ramp = np.tile(np.linspace(0, 255, shape[1]).astype(np.uint8), (shape[0], 1))
    buf = io.BytesIO()
    Image.fromarray(ramp).save(buf, format="PNG")
    return name, buf.getvalue(), "image/png"


def chart_spec(at, index: int = 0) -> dict:
    """The plotly figure JSON of the ``index``-th plotly chart on the page."""
    return json.loads(at.get("plotly_chart")[index].proto.spec)


def plotly_array(value) -> np.ndarray:
    """Decode a plotly JSON array (a list, or a base64 typed array ``{"dtype", "bdata", "shape"}``)."""
    if isinstance(value, dict) and "bdata" in value:
        arr = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = value.get("shape")
        return arr.reshape([int(n) for n in str(shape).split(",")]) if shape else arr
    return np.asarray(value)


def study_caption(at) -> str:
    """The viewer's one-line study description (first caption of the main area)."""
    return at.main.caption[0].value
