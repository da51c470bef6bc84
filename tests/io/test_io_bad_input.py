"""Bad input (RELIABILITY.md §2 BI-xx / SE-xx): every bad file is a FileProblem, the rest still loads."""

from __future__ import annotations

import io
import os
import struct
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from io_builders import dicom_bytes, make_ct_dataset, nifti_bytes, png_bytes, zip_bytes

from medviz.io import load_files, load_path
from medviz.types import LoadError


def _pydicom_file(name: str) -> bytes:
    return Path(str(resources.files("pydicom.data").joinpath("test_files", name))).read_bytes()


def _ct_bytes(**kw) -> bytes:
    return dicom_bytes(make_ct_dataset(np.zeros((6, 8)), **kw))


def _problem(result, source: str) -> str:
    found = [p.problem for p in result.problems if p.source == source]
    assert found, f"no problem reported for {source}: {result.problems}"
    return found[0]


def _single_error(name: str, data: bytes) -> str:
    with pytest.raises(LoadError) as info:
        load_files([(name, data)])
    assert info.value.source == name
    return info.value.problem


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


# ---- DICOM ----------------------------------------------------------------------------------


def test_random_bytes_named_dcm_is_not_dicom_and_batch_still_loads(ct_series):
    files = ct_series(n=3) + [("junk.dcm", os.urandom(4000))]
    r = load_files(files)
    assert len(r.series) == 1 and r.series[0].volume.shape[0] == 3
    assert "not a DICOM file" in _problem(r, "junk.dcm")


def test_renamed_png_loads_as_png():
    r = load_files([("IM0001.dcm", png_bytes(np.zeros((5, 7), np.uint8)))])
    assert r.series[0].volume.shape == (1, 5, 7) and r.series[0].volume.meta["Format"] == "PNG"


def test_truncated_pixel_data():
    data = _ct_bytes()
    assert "truncated DICOM: pixel data is 40 bytes short" in _single_error("cut.dcm", data[:-40])


def test_truncated_inside_header():
    data = _ct_bytes()
    assert "truncated DICOM" in _single_error("cut.dcm", data[:400])


def test_truncated_compressed_pixel_data():
    data = _pydicom_file("MR_small_jp2klossless.dcm")
    assert "truncated DICOM" in _single_error("cut.dcm", data[:-500])


def test_dataset_without_preamble_loads():
    from pydicom.dataset import FileMetaDataset

    ds = make_ct_dataset(np.zeros((6, 8)))
    ds.file_meta = FileMetaDataset()
    buf = io.BytesIO()
    ds.save_as(buf, implicit_vr=True, little_endian=True)  # no preamble, no file meta
    assert buf.getvalue()[:2] == b"\x08\x00"
    v = load_files([("raw", buf.getvalue())]).series[0].volume
    assert v.shape == (1, 6, 8) and v.meta["TransferSyntax"] == "Implicit VR Little Endian"


def test_rows_columns_inconsistent_with_pixel_length():
    ds = make_ct_dataset(np.zeros((6, 8)))
    ds.Rows = 60
    msg = _single_error("rows.dcm", dicom_bytes(ds))
    assert "pixel data is 864 bytes short" in msg and "1×60×8" in msg


def test_pixel_data_too_long_warns():
    ds = make_ct_dataset(np.zeros((6, 8)))
    ds.PixelData = ds.PixelData * 3
    v = load_files([("long.dcm", dicom_bytes(ds))]).series[0].volume
    assert any("extra data was ignored" in w and "NumberOfFrames may be missing" in w for w in v.warnings)


def test_absurd_dimensions_refused_before_allocation():
    ds = make_ct_dataset(np.zeros((6, 8)))
    ds.Rows, ds.Columns, ds.NumberOfFrames = 65535, 65535, 1000
    before = _rss_mb()
    msg = _single_error("huge.dcm", dicom_bytes(ds))
    assert "65535×65535" in msg and "over the limit" in msg
    assert _rss_mb() - before < 50


def test_image_attributes_without_pixel_data():
    ds = make_ct_dataset(np.zeros((6, 8)))
    del ds.PixelData
    assert "Pixel Data is missing" in _single_error("nopix.dcm", dicom_bytes(ds))


def test_structured_report_listed_as_non_image(ct_series):
    r = load_files(ct_series(n=2) + [("report.dcm", _pydicom_file("test-SR.dcm"))])
    assert any("non-image DICOM" in n and "report.dcm (SR)" in n for n in r.notes)
    assert r.problems == []
    assert "non-image" in _single_error("report.dcm", _pydicom_file("test-SR.dcm"))


def test_unknown_transfer_syntax():
    data = _ct_bytes()
    fake = data.replace(b"1.2.840.10008.1.2.1\x00", b"1.2.840.10008.9.9.9\x00", 1)
    assert fake != data
    assert "unsupported transfer syntax 1.2.840.10008.9.9.9" in _single_error("fake.dcm", fake)


def test_transfer_syntax_without_installed_decoder(monkeypatch):
    from pydicom.pixels import get_decoder
    from pydicom.uid import JPEG2000Lossless

    decoder = get_decoder(JPEG2000Lossless)
    monkeypatch.setattr(decoder, "_available", {})
    monkeypatch.setattr(decoder, "_unavailable", {"pylibjpeg": ("numpy", "pylibjpeg", "pylibjpeg-openjpeg")})
    msg = _single_error("j2k.dcm", _pydicom_file("MR_small_jp2klossless.dcm"))
    assert "no decoder installed for transfer syntax JPEG 2000" in msg and "pylibjpeg-openjpeg" in msg


def test_corrupt_compressed_fragment_is_a_problem():
    msg = _single_error("bad.dcm", _pydicom_file("JPEG2000-embedded-sequence-delimiter.dcm"))
    assert "— could not decode JPEG 2000" in msg


def test_deeply_nested_sequences_recursion_error():
    base = _ct_bytes()
    start = 144 + int.from_bytes(base[140:144], "little")  # after the file meta group
    depth = 3000
    open_ = struct.pack("<HH", 0x0008, 0x1115) + b"SQ\x00\x00" + struct.pack("<I", 0xFFFFFFFF)
    open_ += struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
    close = struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    data = base[:start] + open_ * depth + close * depth + base[start:]
    assert "too deep" in _single_error("deep.dcm", data)


def test_any_pydicom_exception_becomes_a_problem(monkeypatch, ct_series):
    import pydicom

    real = pydicom.dcmread

    def flaky(fp, *a, **kw):
        if b"BOOM" in fp.getvalue():
            raise KeyError("internal")
        return real(fp, *a, **kw)

    monkeypatch.setattr(pydicom, "dcmread", flaky)
    bad = _ct_bytes() + b"BOOM"
    r = load_files(ct_series(n=2) + [("x.dcm", bad)])
    problem = _problem(r, "x.dcm")
    assert len(r.series) == 1 and "do not agree with each other" in problem and "KeyError" not in problem


def test_deflate_bomb_refused(small_limits):
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    ds = make_ct_dataset(np.zeros((1000, 1000)))
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    data = dicom_bytes(ds)
    assert len(data) < 100_000
    small_limits(max_unpacked_bytes=500_000)
    assert "inflates to more than the limit of 500,000 bytes" in _single_error("dfl.dcm", data)


def test_deflated_file_loads():
    v = load_files([("dfl.dcm", _pydicom_file("image_dfl.dcm"))]).series[0].volume
    assert v.shape == (1, 512, 512) and v.meta["TransferSyntax"] == "Deflated Explicit VR Little Endian"


# ---- input plumbing -------------------------------------------------------------------------


def test_empty_input_and_zero_byte_file(ct_series):
    with pytest.raises(LoadError, match="no files were given"):
        load_files([])
    assert _single_error("empty.dcm", b"") == "no usable image found — empty file (0 bytes)"
    r = load_files(ct_series(n=2) + [("empty.dcm", b"")])
    assert _problem(r, "empty.dcm") == "empty file (0 bytes)"


def test_os_clutter_ignored(ct_series):
    files = ct_series(n=2) + [(".DS_Store", b"\x00\x00\x00\x01Bud1"), ("__MACOSX/series/._IM0000", b"\x00\x05\x16\x07")]
    r = load_files([("upload.zip", zip_bytes(files))])
    assert r.problems == [] and len(r.series) == 1
    assert any("system file" in n for n in r.notes)


def test_unsupported_raster_format_renamed_png():
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (4, 4)).save(buf, format="TIFF")
    assert "TIFF images are not supported" in _single_error("scan.png", buf.getvalue())


def test_truncated_png():
    data = png_bytes(np.arange(64 * 64, dtype=np.uint32).reshape(64, 64).astype(np.uint8))
    assert "truncated or corrupt PNG" in _single_error("cut.png", data[: len(data) // 2])


@pytest.mark.parametrize("side", [110, 150])  # over the limit (warning level) and over 2x (error level)
def test_pil_decompression_bomb(small_limits, side):
    from PIL import Image

    small_limits(max_image_pixels=10_000)
    msg = _single_error("big.png", png_bytes(np.zeros((side, side), np.uint8)))
    assert "over the limit of 10,000" in msg or "too large" in msg
    assert Image.MAX_IMAGE_PIXELS == 10_000


def test_load_path_missing_and_folder(tmp_path, ct_series):
    with pytest.raises(LoadError, match="no such file"):
        load_path(tmp_path / "nope")
    folder = tmp_path / "study" / "sub"
    folder.mkdir(parents=True)
    for name, data in ct_series(n=3):
        (folder / Path(name).name).write_bytes(data)
    (folder / "notes.txt").write_text("hello")
    r = load_path(tmp_path / "study")
    assert r.series[0].volume.shape[0] == 3 and r.problems == []
    assert any("side file" in n for n in r.notes)


# ---- zip ------------------------------------------------------------------------------------


def test_zip_path_traversal_never_extracted(tmp_path, monkeypatch, ct_series):
    monkeypatch.chdir(tmp_path)
    good = ct_series(n=2)
    members = good + [("../evil.dcm", good[0][1]), ("/abs/evil.dcm", good[0][1]), ("C:\\evil.dcm", good[0][1])]
    r = load_files([("up.zip", zip_bytes(members))])
    assert len(r.series) == 1 and r.series[0].volume.shape[0] == 2
    assert "path traversal" in _problem(r, "up.zip/../evil.dcm")
    assert "absolute path" in _problem(r, "up.zip//abs/evil.dcm")
    assert "absolute path" in _problem(r, "up.zip/C:\\evil.dcm")
    assert list(tmp_path.iterdir()) == [] and not (tmp_path.parent / "evil.dcm").exists()


def test_zip_bomb_ratio_refused_before_reading():
    bomb = zip_bytes([("zeros.dcm", bytes(4 * 2**20))])
    assert "ratio limit" in _single_error("bomb.zip", bomb)


def test_zip_declared_size_and_entry_count(small_limits):
    small_limits(max_unpacked_bytes=10_000, max_zip_entries=3)
    big = zip_bytes([("a.png", os.urandom(20_000))])
    assert "declares 20,000 bytes" in _single_error("big.zip", big)
    many = zip_bytes([(f"f{i}.txt", b"x") for i in range(5)])
    assert "5 entries, over the limit of 3" in _single_error("many.zip", many)


def test_zip_with_lying_sizes_is_bounded():
    z = bytearray(zip_bytes([("a.dcm", bytes(2 * 2**20))]))
    struct.pack_into("<I", z, 22, 10)  # local header: uncompressed size
    cd = z.find(b"PK\x01\x02")
    struct.pack_into("<I", z, cd + 24, 10)  # central directory: uncompressed size
    with pytest.raises(LoadError) as info:
        load_files([("liar.zip", bytes(z))])
    assert "liar.zip/a.dcm" in info.value.problem
    assert "CRC" in info.value.problem or "more bytes than declared" in info.value.problem


def test_nested_zip_and_empty_zip(ct_series):
    inner = zip_bytes(ct_series(n=2))
    r = load_files([("outer.zip", zip_bytes([("inner.zip", inner)]))])
    assert r.series[0].volume.shape[0] == 2
    too_deep = zip_bytes([("l2.zip", zip_bytes([("l3.zip", inner)]))])
    assert "nested more than 2 levels" in _single_error("l1.zip", too_deep)
    assert "no usable image found" in _single_error("empty.zip", zip_bytes([]))


# ---- NIfTI ----------------------------------------------------------------------------------


def test_nifti_nan_inf_replaced_with_warning():
    arr = np.arange(24, dtype=np.float32).reshape(2, 3, 4) + 5
    arr[0, 0, 0], arr[1, 2, 3] = np.nan, np.inf
    v = load_files([("nan.nii", nifti_bytes(arr))]).series[0].volume
    assert np.isfinite(v.array).all() and v.array.min() == 6
    assert any("2 NaN/Inf voxel(s) replaced by 6" in w for w in v.warnings)


@pytest.mark.parametrize("gz", [False, True])
def test_nifti_absurd_header_dims_refused_before_allocation(gz):
    import gzip

    import nibabel as nib

    hdr = nib.Nifti1Header()
    hdr.set_data_dtype(np.float32)
    hdr.set_data_shape((30000, 30000, 30000))
    raw = hdr.binaryblock + b"\x00" * 4 + b"\x00" * 64
    data = gzip.compress(raw) if gz else raw
    before = _rss_mb()
    msg = _single_error("huge.nii.gz" if gz else "huge.nii", data)
    assert "30000×30000×30000" in msg and "over the limit" in msg
    assert _rss_mb() - before < 50


def test_nifti_truncated():
    data = nifti_bytes(np.zeros((10, 10, 10), np.float32))
    assert "truncated NIfTI" in _single_error("cut.nii", data[:-100])


def test_nifti_gzip_bomb_capped(small_limits):
    import gzip

    data = gzip.compress(nifti_bytes(np.zeros((100, 100, 100), np.float32)))
    small_limits(max_unpacked_bytes=1_000_000)
    assert "over the limit of 1,000,000" in _single_error("bomb.nii.gz", data)


def test_nifti_non_positive_pixdim_and_singular_affine():
    import nibabel as nib

    img = nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.eye(4))
    img.header.set_sform(None, code=0)
    img.header.set_qform(np.eye(4), code=1)
    raw = bytearray(img.to_bytes())
    struct.pack_into("<f", raw, 80, 0.0)  # pixdim[1]
    assert "pixdim" in _single_error("pix.nii", bytes(raw))
    raw = bytearray(nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.eye(4)).to_bytes())
    struct.pack_into("<hh", raw, 252, 0, 1)  # qform_code 0, sform_code 1
    struct.pack_into("<4f", raw, 312, 0.0, 0.0, 0.0, 0.0)  # srow_z = 0: singular sform
    assert "singular" in _single_error("sing.nii", bytes(raw))


def test_nifti_4d_keeps_first_volume():
    arr = np.stack([np.full((3, 4, 5), k, np.float32) for k in range(3)], axis=-1)
    v = load_files([("fmri.nii.gz", nifti_bytes(arr, gz=True))]).series[0].volume
    assert v.shape == (5, 4, 3) and float(v.array.max()) == 0.0
    assert any("4D NIfTI" in w and "first volume" in w for w in v.warnings)


def test_analyze_pair_header_refused():
    import nibabel as nib

    hdr = nib.Nifti1Pair(np.zeros((2, 2, 2), np.int16), np.eye(4)).header
    assert ".hdr/.img pair" in _single_error("x.hdr", hdr.binaryblock)


def test_pydicom_warnings_quoting_values_are_not_logged(caplog, recwarn):
    import logging

    with pytest.warns(UserWarning, match="CANARY"):  # pydicom warns while building the invalid UID
        data = dicom_bytes(make_ct_dataset(np.zeros((6, 8)), series_uid="1.2.CANARY.UID"))
    recwarn.clear()
    caplog.clear()
    caplog.set_level(logging.DEBUG)
    r = load_files([("x.dcm", data)])
    assert r.series[0].volume.shape == (1, 6, 8)
    assert "CANARY" not in caplog.text
    assert not [w for w in recwarn if "CANARY" in str(w.message)]
