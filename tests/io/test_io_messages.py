"""Load messages are in words (RELIABILITY: user-facing messages only, issue #18 point 5).

Every file pydicom bundles is loaded; no problem, note or warning may contain a Python exception class name
or a decoder plug-in's internal text. The misleading messages found by the hostile-file probe are checked
one by one on files made here.
"""

from __future__ import annotations

import glob
import io
import os

import numpy as np
import pydicom
import pytest
from io_builders import dicom_bytes, make_ct_dataset, png_bytes
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from medviz.io.loader import load_files
from medviz.io.results import EXCEPTION_NAME, describe
from medviz.types import LoadError


def _messages(files: list[tuple[str, bytes]]) -> list[str]:
    try:
        result = load_files(files)
    except LoadError as e:
        return [str(e)]
    return ([p.problem for p in result.problems] + result.notes
            + [w for s in result.series for w in s.volume.warnings])


def _only_message(files: list[tuple[str, bytes]]) -> str:
    with pytest.raises(LoadError) as info:
        load_files(files)
    return str(info.value)


def _pydicom_files() -> list[str]:
    root = os.path.dirname(pydicom.data.__file__)
    return sorted(f for f in glob.glob(f"{root}/**/*", recursive=True)
                  if os.path.isfile(f) and not f.endswith((".py", ".pyc")))


def test_no_message_names_an_exception_class_for_any_pydicom_test_file():
    files = _pydicom_files()
    assert len(files) > 150  # the sweep really ran over pydicom's set
    root = os.path.dirname(pydicom.data.__file__)
    offending = []
    for path in files:
        with open(path, "rb") as fh:
            data = fh.read()
        for message in _messages([(os.path.relpath(path, root), data)]):
            if EXCEPTION_NAME.search(message) or "plugins:" in message:
                offending.append(f"{os.path.relpath(path, root)}: {message[:200]}")
    assert offending == []


def test_the_pattern_finds_class_names():
    assert EXCEPTION_NAME.search("RuntimeError: Unable to decode")
    assert EXCEPTION_NAME.search("got InvalidDicomError here")
    assert not EXCEPTION_NAME.search("the file ends 12 bytes early")


@pytest.mark.parametrize("exc", [IndexError("index 175 is out of bounds for axis 0 with size 10"),
                                 TypeError("Alias 'uint0' was removed in NumPy 2.0"),
                                 RuntimeError("Unable to decode: gdcm: ... pylibjpeg: libjpeg error code '-1038'"),
                                 KeyError("(0028,1101)"), OSError("bad"), RecursionError("too deep"),
                                 ValueError("RuntimeError: something internal")])
def test_library_failures_are_said_in_words(exc):
    message = describe(exc, "could not decode pixel data")
    assert message.startswith("could not decode pixel data: ")
    assert not EXCEPTION_NAME.search(message)
    assert "uint0" not in message and "libjpeg" not in message and "175" not in message


def test_a_readers_own_message_is_kept():
    assert describe(ValueError("truncated DICOM: pixel data is 12 bytes short")) == (
        "truncated DICOM: pixel data is 12 bytes short")


def test_undecodable_compressed_data_names_the_syntax_not_the_plugins():
    with open(get_testdata_file("JPEG-lossy.dcm"), "rb") as fh:
        message = _only_message([("JPEG-lossy.dcm", fh.read())])
    assert "no installed decoder could read the compressed pixel data" in message
    assert "JPEG Extended" in message and "12-bit" in message
    assert "gdcm" not in message.lower() and "pylibjpeg" not in message and not EXCEPTION_NAME.search(message)


def _palette(**change) -> bytes:
    ds = pydicom.dcmread(get_testdata_file("examples_palette.dcm"))
    for key, value in change.items():
        setattr(ds, key, value)
    buf = io.BytesIO()
    ds.save_as(buf)
    return buf.getvalue()


@pytest.mark.parametrize("change", ["short", "zero bits"])
def test_a_broken_colour_palette_is_said_in_words(change):
    ds = pydicom.dcmread(get_testdata_file("examples_palette.dcm"))
    d = list(ds.RedPaletteColorLookupTableDescriptor)
    if change == "short":
        data = _palette(RedPaletteColorLookupTableDescriptor=[10, d[1], d[2]],
                        RedPaletteColorLookupTableData=ds.RedPaletteColorLookupTableData[:20])
    else:
        data = _palette(RedPaletteColorLookupTableDescriptor=[d[0], d[1], 0])
    message = _only_message([("palette.dcm", data)])
    assert "colour palette (Palette Color LUT) cannot be applied" in message
    assert not EXCEPTION_NAME.search(message) and "uint0" not in message


def test_a_modality_lut_with_zero_bit_entries_is_said_in_words():
    ds = make_ct_dataset(np.arange(20).reshape(4, 5) * 10)
    del ds.RescaleSlope, ds.RescaleIntercept
    item = Dataset()
    item.LUTDescriptor = [256, 0, 0]
    item.add_new(0x00283006, "US", list(range(256)))
    item.ModalityLUTType = "HU"
    ds.ModalityLUTSequence = Sequence([item])
    message = _only_message([("mlut.dcm", dicom_bytes(ds))])
    assert "Modality LUT cannot be applied" in message and not EXCEPTION_NAME.search(message)


def test_three_samples_with_a_monochrome_interpretation_is_called_a_contradiction():
    ds = make_ct_dataset(np.zeros((4, 5)))
    ds.set_pixel_data(np.zeros((4, 5, 3), np.uint8), "RGB", 8)
    ds.PhotometricInterpretation = "MONOCHROME2"
    message = _only_message([("colour.dcm", dicom_bytes(ds))])
    assert "SamplesPerPixel is 3" in message and "MONOCHROME2" in message
    assert "not supported" not in message


def test_a_png_behind_a_dicom_marker_is_named():
    data = b"\0" * 128 + b"DICM" + png_bytes(np.zeros((8, 8), np.uint8))
    message = _only_message([("x.dcm", data)])
    assert "holds a PNG image behind it" in message and "bytes early" not in message


def test_a_dicom_marker_followed_by_garbage_is_not_called_truncated():
    data = b"\0" * 128 + b"DICM" + bytes(range(7, 250)) * 4
    message = _only_message([("x.dcm", data)])
    assert "is followed by no DICOM element" in message and "bytes early" not in message


@pytest.mark.parametrize("shape", [(4, 0, 3), (4, 4, 3, 0)])
def test_a_nifti_with_a_zero_dimension_says_so(shape):
    import nibabel as nib

    data = nib.Nifti1Image(np.zeros(shape, np.float32), np.eye(4)).to_bytes()
    message = _only_message([("zero.nii", data)])
    assert "dimension of size 0" in message and "Integer index" not in message
