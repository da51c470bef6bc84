"""Viewer benchmark on the 20-slice 512x512 CT series (not a test).

Times, as medians over ``--runs`` runs, the steps a user waits for on the Viewer page:

* upload bytes -> Volume (``medviz.io.load_files`` on the 20 in-memory files),
* first figure: presets (auto window) + middle axial slice + ``slice_figure`` + ``fig.to_json()``
  (what Streamlit serialises and sends),
* a slice change, a window change and a coronal reformat (figure + JSON each).

Usage::

    python bench/viewer.py [--runs 7] [--data-dir PATH]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from medviz.config import get_settings  # noqa: E402
from medviz.constants import CT_PRESETS, Plane  # noqa: E402
from medviz.imaging.slicing import extract_plane  # noqa: E402
from medviz.imaging.viz import slice_figure  # noqa: E402
from medviz.imaging.windowing import window_presets  # noqa: E402
from medviz.io import load_files  # noqa: E402
from medviz.types import Volume  # noqa: E402

SERIES = "dicom_series_ct_totalsegmentator"


def _timed(fn: Callable[[], object]) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _render(volume: Volume, plane: Plane, index: int, window_name: str) -> str:
    window = window_presets(volume)[window_name] if window_name != "Lung" else CT_PRESETS["Lung"]
    ps = extract_plane(volume, plane, index)
    fig = slice_figure(ps, window=window, units=volume.units, uirevision="bench", selectable=True)
    return fig.to_json()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args(argv)

    folder = (args.data_dir or get_settings().data_dir) / SERIES
    if not folder.is_dir():
        print(f"{folder} not found: set MEDVIZ_DATA_DIR or pass --data-dir", file=sys.stderr)
        return 2
    files = [(p.name, p.read_bytes()) for p in sorted(folder.iterdir()) if p.is_file() and p.name.startswith("CT.")]
    n_bytes = sum(len(b) for _, b in files)

    steps: dict[str, list[float]] = {}
    sizes: dict[str, int] = {}
    load_files(files[:1])  # warm imports (pydicom, decoders) outside the timings
    for _ in range(args.runs):
        dt, result = _timed(lambda: load_files(files))
        steps.setdefault("upload bytes -> Volume (load_files)", []).append(dt)
        volume = result.series[0].volume
        mid = volume.shape[0] // 2
        for name, fn in (
            ("first figure (presets + slice + figure + JSON)", lambda: _render(volume, Plane.AXIAL, mid, "Soft tissue")),
            ("slice change (figure + JSON)", lambda: _render(volume, Plane.AXIAL, mid + 3, "Soft tissue")),
            ("window change (figure + JSON)", lambda: _render(volume, Plane.AXIAL, mid + 3, "Lung")),
            ("coronal reformat (figure + JSON)", lambda: _render(volume, Plane.CORONAL, 256, "Soft tissue")),
        ):
            dt, payload = _timed(fn)
            steps.setdefault(name, []).append(dt)
            sizes[name] = len(payload)  # type: ignore[arg-type]

    print(f"Viewer benchmark: {len(files)} files, {n_bytes / 2**20:.1f} MiB, volume {volume.shape}, "
          f"{args.runs} runs, Python {sys.version.split()[0]}")  # fmt: skip
    print()
    print("| step | median ms | min ms | max ms | JSON KiB |")
    print("|---|---:|---:|---:|---:|")
    for name, times in steps.items():
        ms = [t * 1000 for t in times]
        size = f"{sizes[name] / 1024:.0f}" if name in sizes else "-"
        print(f"| {name} | {statistics.median(ms):.0f} | {min(ms):.0f} | {max(ms):.0f} | {size} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
