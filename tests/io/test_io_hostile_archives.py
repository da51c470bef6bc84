"""Bounded cost of hostile archives (issue #18 point 4) and the PixelRepresentation check (point 1).

Cost is shown without timing: what matters is that duplicates are found *before* a file is parsed, and that an
upload over the limits is refused before any of its DICOM files is parsed.
"""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from io_builders import dicom_bytes, make_ct_dataset

from medviz.io import dicom
from medviz.io.loader import load_files
from medviz.types import LoadError


def _zip_of_copies(n: int, *, same_uid: bool) -> bytes:
    """``n`` tiny slices at different positions; with ``same_uid`` all share one SOPInstanceUID."""
    template = make_ct_dataset(np.zeros((2, 2), np.int16), position=(0.0, 0.0, 123456.0))
    data = dicom_bytes(template)
    uid = template.SOPInstanceUID.encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for k in range(n):
            member = data.replace(b"123456", f"{k:06d}".encode())
            if not same_uid:
                member = member.replace(uid, uid[:-6] + f"{k:06d}".encode())
            zf.writestr(f"s/{k:05d}.dcm", member)
    return buf.getvalue()


@pytest.fixture
def parse_count(monkeypatch):
    calls = []
    real = dicom.parse_dicom

    def counted(source, data):
        calls.append(source)
        return real(source, data)

    monkeypatch.setattr(dicom, "parse_dicom", counted)
    return calls


def test_meta_sop_uid_reads_the_file_meta_without_a_parser():
    ds = make_ct_dataset(np.zeros((2, 2), np.int16))
    assert dicom.meta_sop_uid(dicom_bytes(ds)) == ds.SOPInstanceUID
    assert dicom.meta_sop_uid(b"\0" * 128 + b"DICM" + b"\x08\x00\x18\x00UI\x02\x001\x00") is None  # no meta group
    assert dicom.meta_sop_uid(b"not dicom") is None


def test_twenty_thousand_entries_sharing_one_sop_uid_parse_one_file(parse_count):
    r = load_files([("hostile.zip", _zip_of_copies(20_000, same_uid=True))])
    assert len(parse_count) == 1  # the other 19,999 were dropped from a header read of a few bytes
    assert len(r.series) == 1 and r.series[0].volume.shape[0] == 1
    assert any(n.startswith("19,999 duplicate DICOM file(s) ignored (same SOP Instance UID") for n in r.notes)


def test_an_upload_over_the_file_limit_is_refused_before_any_parse(parse_count, small_limits):
    small_limits(max_dicom_files=50)
    with pytest.raises(LoadError) as info:
        load_files([("many.zip", _zip_of_copies(51, same_uid=False))])
    assert parse_count == []
    assert "51 distinct DICOM files, over the limit of 50 per upload" in str(info.value)


def test_the_series_count_is_capped_and_the_rest_is_counted(small_limits):
    small_limits(max_series=3)
    files = []
    for k in range(5):
        ds = make_ct_dataset(np.zeros((2, 2), np.int16), series_uid=f"1.2.826.0.1.3680043.8.498.{k + 10}",
                             series_number=k + 1)
        files.append((f"s{k}.dcm", dicom_bytes(ds)))
    r = load_files(files[::-1])
    assert [s.label.split(" · ")[-1] for s in r.series] == ["series 1", "series 2", "series 3"]
    assert any("holds 5 series: the first 3 (by series number) are offered; the other 2 were not loaded" in n
               for n in r.notes)


def test_ct_declared_unsigned_but_stored_signed_is_warned():
    """Air (-1000 HU, stored -1000 + 1024 = 24) is fine; stored signed -1000 read as unsigned is 64,536."""
    ds = make_ct_dataset(np.full((4, 4), -1000, np.int16), intercept=0.0)
    ds.PixelRepresentation = 0  # the header lies: the data are two's-complement
    v = load_files([("signed.dcm", dicom_bytes(ds))]).series[0].volume
    assert float(v.array.max()) == 64536.0
    assert any("PixelRepresentation 0 (unsigned) looks wrong" in w and "64,536 HU" in w for w in v.warnings)
    honest = load_files([("ok.dcm", dicom_bytes(make_ct_dataset(np.full((4, 4), 24, np.int16))))]).series[0].volume
    assert not any("PixelRepresentation" in w for w in honest.warnings)
