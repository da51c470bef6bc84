"""Cost of hostile DICOM zips through the loader (not a test): CPU seconds and peak memory.

* ``dup``: N tiny slices at different positions that all share one SOPInstanceUID;
* ``series``: N tiny slices, each its own series (distinct UIDs).

Usage::

    python bench/hostile_zip.py dup 20000
    python bench/hostile_zip.py series 5000
"""

from __future__ import annotations

import argparse
import io
import resource
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "io")]

from io_builders import dicom_bytes, make_ct_dataset  # noqa: E402

from medviz.io.loader import load_files  # noqa: E402
from medviz.types import LoadError  # noqa: E402


def hostile_zip(mode: str, n: int) -> bytes:
    template = make_ct_dataset(np.zeros((2, 2), np.int16), position=(0, 0, 123456.0))
    data, sop = dicom_bytes(template), template.SOPInstanceUID.encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for k in range(n):
            member = data.replace(b"123456", f"{k:06d}".encode())
            if mode == "series":
                member = member.replace(b"1.2.826.0.1.3680043.8.498.1\0", f"1.2.826.0.1.3680043.8.{k:05d}".encode() + b"\0")
                member = member.replace(sop, sop[:-6] + f"{k:06d}".encode())
            zf.writestr(f"s/{k:05d}.dcm", member)
    return buf.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["dup", "series"])
    parser.add_argument("n", type=int)
    args = parser.parse_args()
    data = hostile_zip(args.mode, args.n)
    t0 = time.process_time()
    try:
        result = load_files([("hostile.zip", data)])
        outcome = f"{len(result.series)} series; notes: {result.notes[:2]}"
    except LoadError as e:
        outcome = f"refused: {e}"
    cpu = time.process_time() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"zip {len(data) / 1e6:.1f} MB, {args.n:,} entries: {cpu:.2f} s CPU, peak RSS {peak:.0f} MB; {outcome}")


if __name__ == "__main__":
    main()
