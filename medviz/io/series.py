"""Group parsed DICOM instances into series and build one :class:`~medviz.types.Volume` each.

Rules (see RELIABILITY.md BI-13..BI-18):
    * Group by SeriesInstanceUID, then into *stacks* of frames sharing Rows/Columns, colour and
      ImageOrientationPatient. The largest stack is the series; stacks of fewer than 3 frames
      (or ImageType LOCALIZER) are excluded with a note; larger extra stacks become separate
      choices ("part 2").
    * Sort by ImagePositionPatient projected on the slice normal (IOP row × column), never by
      file name or upload order. Identical SOPInstanceUIDs are de-duplicated; several frames at
      one position with different UIDs are "multi-phase/duplicate positions": split into phases
      when every position has the same count, otherwise the first per position is kept.
    * Slice spacing is the median step between sorted positions; gaps, uneven steps and gantry
      tilt are reported in ``Volume.warnings`` with the values in mm. Without IPP/IOP the frames
      are stacked by InstanceNumber (then frame number) and the 3D geometry is unknown.
    * The LPS affine is built from IOP, PixelSpacing and the positions, then the array is
      reoriented to the closest LPS+ axes (:func:`medviz.io.geometry.reorient_to_lps`).
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from medviz.io import dicom as _dicom
from medviz.io import dicom_pixels as _pixels
from medviz.io.geometry import reorient_to_lps
from medviz.io.results import FileProblem, describe
from medviz.types import Volume, affine_from_spacing

POSITION_TOL_MM = 0.01  # frames closer than this along the normal share a position
ORIENTATION_TOL = 1e-3  # max abs difference between IOP components of one stack
MIN_STACK = 3  # extra stacks smaller than this are treated as localizers and excluded


@dataclass
class _Slice:
    inst: _dicom.Instance
    frame: _dicom.FrameInfo


@dataclass
class Built:
    """One volume made from DICOM, with its label and a sort key."""

    label: str
    volume: Volume
    sort_key: tuple


@dataclass
class Assembly:
    built: list[Built] = field(default_factory=list)
    problems: list[FileProblem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def assemble(instances: list[_dicom.Instance]) -> Assembly:
    """Build volumes from parsed instances (pixels are decoded here, one file at a time).

    Args:
        instances: parsed DICOM image instances, in any order.

    Returns:
        An :class:`Assembly`: volumes, per-file decode problems and notes.
    """
    out = Assembly()
    decoded: dict[int, _pixels.Decoded | None] = {}
    by_series: dict[str, list[_dicom.Instance]] = defaultdict(list)
    for inst in instances:
        by_series[inst.series_uid or _fallback_series_key(inst)].append(inst)
    if any(not i.series_uid for i in instances):
        out.notes.append(
            "some DICOM files have no SeriesInstanceUID: they were grouped by frame of reference, "
            "series number, modality and geometry"
        )
    for members in by_series.values():
        members = _dedupe_instances(members, out)
        for whole, part, phase in _stacks(members, out):
            runs = _regular_runs(whole, out)
            for k, stack in enumerate(runs):
                built = _built(stack, decoded, out, part, phase, (k, len(runs)))
                if built is not None:
                    out.built.append(built)
        decoded.clear()  # instances never span series: free the decoded frames early
    out.built.sort(key=lambda b: b.sort_key)
    return out


GAP_FACTOR = 1.5  # a step longer than this many times the median step is a gap


def _regular_runs(slices: list[_Slice], out: Assembly) -> list[list[_Slice]]:
    """Split a position-sorted stack at gaps in its slice positions, so that every volume has regular steps
    and its affine puts each slice where the files say (a uniform affine across a gap would misplace every
    slice after it). Stacks without patient geometry, or without gaps, come back whole."""
    if len(slices) < 3 or not slices[0].inst.has_geometry or any(s.frame.position is None for s in slices):
        return [slices]
    normal = _normal(slices[0].frame.orientation)
    steps = np.diff([float(s.frame.position @ normal) for s in slices])
    step = float(np.median(steps))
    cuts = [i + 1 for i, d in enumerate(steps) if step > 0 and d > GAP_FACTOR * step]
    if not cuts:
        return [slices]
    bounds = [0, *cuts, len(slices)]
    runs = [slices[a:b] for a, b in zip(bounds, bounds[1:])]
    gaps = ", ".join(f"{steps[c - 1]:.2f} mm after slice {c}" for c in cuts[:5])
    out.notes.append(
        f"series {_series_text(slices[0].inst)} has gaps in its slice positions ({gaps}; usual step {step:.2f} mm): "
        f"split into {len(runs)} stacks with regular spacing, so every slice keeps its true position"
    )
    return runs


def _built(stack: list[_Slice], decoded: dict[int, _pixels.Decoded | None], out: Assembly, part: int,
           phase: tuple[int, int] | None, run: tuple[int, int]) -> Built | None:
    """One volume of the series with its label and sort key (None when nothing could be decoded); a failure
    becomes a problem of this stack only. ``run``: (index, count) of the regular stacks of a gapped series."""
    try:
        vol = _build(stack, decoded, out)
    except Exception as e:  # per-series boundary: one broken series must not stop the others
        stage = f"could not build series {_series_text(stack[0].inst)}"
        out.problems.append(FileProblem(_display_name(stack), describe(e, stage)))
        return None
    if vol is None:
        return None
    first = stack[0].inst
    label = _label(first, vol, part, phase) + (f" · stack {run[0] + 1} of {run[1]} (gap)" if run[1] > 1 else "")
    key = (first.series_number if first.series_number is not None else 1 << 30, min(s.inst.source for s in stack),
           part or 0, phase[0] if phase else 0, run[0])
    return Built(label, vol, key)


def _fallback_series_key(inst: _dicom.Instance) -> str:
    ds = inst.ds
    parts = (ds.get("StudyInstanceUID", ""), ds.get("FrameOfReferenceUID", ""), inst.series_number, inst.modality)
    return "no-uid:" + "|".join(str(p or "") for p in parts)


def _dedupe_instances(members: list[_dicom.Instance], out: Assembly) -> list[_dicom.Instance]:
    seen: dict[str, _dicom.Instance] = {}
    kept, dups = [], 0
    for inst in sorted(members, key=lambda i: i.source):
        if inst.sop_uid and inst.sop_uid in seen:
            dups += 1
            continue
        if inst.sop_uid:
            seen[inst.sop_uid] = inst
        kept.append(inst)
    if dups:
        out.notes.append(f"{dups} duplicate DICOM file(s) ignored (same SOP Instance UID as another file)")
    return kept


def _stacks(members: list[_dicom.Instance], out: Assembly) -> list[tuple[list[_Slice], int, tuple[int, int] | None]]:
    """Split one series into stacks; returns ``(slices, part, phase)`` for each volume to build."""
    groups: list[tuple[tuple, np.ndarray | None, list[_Slice]]] = []
    for inst in members:
        solo = not inst.has_geometry and (inst.modality in _dicom.PROJECTION_MODALITIES or inst.n_frames > 1)
        for fr in inst.frames:
            key = (
                inst.rows,
                inst.columns,
                inst.is_colour,
                inst.has_geometry,
                inst.is_localizer,
                inst.source if solo else "",
            )
            ori = fr.orientation if inst.has_geometry else None
            for gkey, gori, slices in groups:
                if gkey == key and (ori is None or np.max(np.abs(gori - ori)) < ORIENTATION_TOL):
                    slices.append(_Slice(inst, fr))
                    break
            else:
                groups.append((key, ori, [_Slice(inst, fr)]))
    groups.sort(key=lambda g: (g[0][4], -len(g[2])))  # non-localizers first, then largest
    result: list[tuple[list[_Slice], int, tuple[int, int] | None]] = []
    excluded, parts = 0, 0
    for key, _ori, slices in groups:
        solo = bool(key[5])
        if result and not solo and (len(slices) < MIN_STACK or key[4]):
            excluded += len(slices)
            continue
        part = 0
        if not solo:
            parts += 1
            part = parts if parts > 1 else 0
        for phase_slices, phase in _phases(slices, out):
            result.append((phase_slices, part, phase))
    if excluded:
        out.notes.append(
            f"{excluded} localizer/other-orientation image(s) excluded from series "
            f"{_series_text(members[0])} (different ImageOrientationPatient, size or LOCALIZER type)"
        )
    return result


def _phases(slices: list[_Slice], out: Assembly) -> list[tuple[list[_Slice], tuple[int, int] | None]]:
    """Sort a stack by position; split multi-phase data or keep the first frame per position."""
    first = slices[0].inst
    if not first.has_geometry:
        slices.sort(
            key=lambda s: (
                s.inst.instance_number if s.inst.instance_number is not None else 1 << 30,
                s.inst.source,
                s.frame.index,
            )
        )
        return [(slices, None)]
    normal = _normal(slices[0].frame.orientation)
    dist = np.array([float(s.frame.position @ normal) for s in slices])
    order = sorted(range(len(slices)), key=lambda i: (dist[i], slices[i].frame.order_key, slices[i].inst.source))
    positions: list[list[int]] = []
    for i in order:
        if positions and abs(dist[i] - dist[positions[-1][0]]) < POSITION_TOL_MM:
            positions[-1].append(i)
        else:
            positions.append([i])
    counts = {len(p) for p in positions}
    if counts == {1}:
        return [([slices[i] for i in order], None)]
    total = sum(len(p) for p in positions)
    series = _series_text(first)
    if len(counts) == 1:
        k = counts.pop()
        out.notes.append(
            f"multi-phase/duplicate positions in series {series}: {k} images at each of {len(positions)} positions "
            f"(different SOP Instance UIDs); split into {k} phases"
        )
        return [([slices[p[j]] for p in positions], (j + 1, k)) for j in range(k)]
    out.notes.append(
        f"multi-phase/duplicate positions in series {series}: {total - len(positions)} image(s) share a position "
        "with another image (different SOP Instance UIDs); the first at each position was kept"
    )
    return [([slices[p[0]] for p in positions], None)]


@dataclass
class _Placed:
    """A decoded stack laid out under the Volume contract: ``array`` (Z, Y, X[, 3]) in LPS+ order when the
    files carry patient geometry, its ``affine``/``spacing``/``orientation``, which array axis was the
    acquisition's slice axis (and whether it was reversed), and the source slice order for the headers."""

    array: np.ndarray
    affine: np.ndarray
    spacing: tuple[float, float, float]
    orientation: str
    slice_axis: int
    slice_flipped: bool
    headers_order: list[int]


def _build(stack: list[_Slice], cache: dict[int, _pixels.Decoded | None], out: Assembly) -> Volume | None:
    """One Volume from the slices of one stack (None when no slice could be decoded)."""
    kept, warnings = _decode_stack(stack, cache, out)
    if not kept:
        return None
    first = kept[0][0].inst
    slices = [s for s, _, _ in kept]
    dec0 = kept[0][2]
    spacing_known = slices[0].frame.pixel_spacing is not None
    if first.spacing_source == "ImagerPixelSpacing":
        warnings.append("pixel spacing from ImagerPixelSpacing (detector plane, not corrected for magnification)")
    placed = _place(np.stack([a for _, a, _ in kept]), slices, first, spacing_known, warnings)
    return Volume(
        array=placed.array,
        spacing=placed.spacing,
        affine=placed.affine,
        modality=first.modality,
        units=dec0.units,
        orientation=placed.orientation,
        spacing_known=spacing_known,
        name=_display_name(slices),
        meta=_volume_meta(first, len(slices), placed, dec0),
        warnings=tuple(dict.fromkeys(warnings)),
        dicom_headers=tuple(_source_headers(slices, placed.headers_order)),
    )


def _decode_stack(stack: list[_Slice], cache: dict[int, _pixels.Decoded | None],
                  out: Assembly) -> tuple[list[tuple[_Slice, np.ndarray, _pixels.Decoded]], list[str]]:
    """Decode every slice (each file once, through ``cache``); returns the decoded ``(slice, 2D array,
    decoded file)`` triples and the warnings of their files and decoders, plus a count of lost slices."""
    kept: list[tuple[_Slice, np.ndarray, _pixels.Decoded]] = []
    for s in stack:
        dec = _decode_cached(s.inst, cache, out)
        if dec is not None:
            kept.append((s, dec.array[s.frame.index], dec))
    warnings: list[str] = []
    for inst in _unique(s.inst for s, _, _ in kept):
        warnings += [f"{inst.source}: {w}" for w in inst.warnings] if len(stack) > 1 else inst.warnings
    for dec in _unique(d for _, _, d in kept):
        warnings += list(dec.notes)
    lost = len(stack) - len(kept)
    if kept and lost:
        warnings.append(f"{lost} slice(s) could not be decoded and are missing from the volume")
    return kept, warnings


def _place(array: np.ndarray, slices: list[_Slice], first: _dicom.Instance, spacing_known: bool,
           warnings: list[str]) -> _Placed:
    """Lay the stacked ``(n, rows, cols[, 3])`` array out in patient space (reoriented to LPS+) when the
    files have geometry, else as a plain stack with the spacing the files give; appends to ``warnings``."""
    headers_order = list(range(len(slices)))
    if first.has_geometry:
        affine, geo_warn = _affine(slices, first)
        warnings += geo_warn
        xyz = np.transpose(array, (2, 1, 0, 3) if array.ndim == 4 else (2, 1, 0))
        r = reorient_to_lps(xyz, affine)
        if r.source_slice_axis == 0 and r.source_slice_flipped:
            headers_order.reverse()
        return _Placed(r.array, r.affine, r.spacing, r.orientation, r.source_slice_axis, r.source_slice_flipped,
                       headers_order)
    ps = slices[0].frame.pixel_spacing or (1.0, 1.0)
    spacing = (first.slice_spacing_hint or 1.0, ps[0], ps[1])
    if not spacing_known and not any("PixelSpacing" in w for w in warnings):
        warnings.append("no pixel spacing in the file: 1 mm assumed")
    if len(slices) > 1:
        how = "frame order" if first.n_frames > 1 and len(_unique(s.inst for s in slices)) == 1 else "InstanceNumber"
        warnings.append(
            f"no patient geometry (ImagePositionPatient/ImageOrientationPatient missing): {len(slices)} images "
            f"stacked by {how}; 3D geometry is unknown"
        )
    return _Placed(array, affine_from_spacing(spacing), spacing, "unknown", 0, False, headers_order)


def _volume_meta(first: _dicom.Instance, n_slices: int, placed: _Placed, dec0: _pixels.Decoded) -> dict:
    """The Volume's non-identifying metadata (see :func:`medviz.io.dicom.safe_meta`) plus the slice layout."""
    meta = _dicom.safe_meta(first)
    meta["NumberOfSlices"] = n_slices
    meta["SourceSliceAxis"] = placed.slice_axis
    meta["SourceSliceFlipped"] = placed.slice_flipped
    if dec0.inverted:
        meta["MONOCHROME1Inverted"] = True
        if "WindowCenter" in meta and dec0.invert_sum is not None:
            meta["WindowCenter"] = dec0.invert_sum - float(meta["WindowCenter"])
    return meta


def _source_headers(slices: list[_Slice], order: list[int]) -> list:
    """One source dataset per instance in final slice order, with pixel data removed (exports only)."""
    headers = []
    for i in order:
        ds = slices[i].inst.ds
        if not headers or headers[-1] is not ds:
            headers.append(ds)
    for ds in _unique(headers):
        for kw in _dicom.PIXEL_KEYWORDS:
            if kw in ds:
                del ds[kw]
    return headers


def _decode_cached(
    inst: _dicom.Instance, cache: dict[int, _pixels.Decoded | None], out: Assembly
) -> _pixels.Decoded | None:
    if id(inst) not in cache:
        try:
            cache[id(inst)] = _pixels.decode_pixels(inst)
        except Exception as e:  # per-file boundary: any decoder failure becomes a FileProblem
            cache[id(inst)] = None
            out.problems.append(
                FileProblem(inst.source, describe(e, f"could not decode {inst.transfer_syntax_name} pixel data"))
            )
    return cache[id(inst)]


def _affine(slices: list[_Slice], first: _dicom.Instance) -> tuple[np.ndarray, list[str]]:
    """LPS affine for index ``(x, y, z)`` of a sorted stack, and geometry warnings (mm)."""
    warn: list[str] = []
    f0 = slices[0].frame
    iop = f0.orientation
    row_dir, col_dir = iop[:3], iop[3:]
    normal = _normal(iop)
    ps = f0.pixel_spacing
    if ps is None:
        ps = (1.0, 1.0)
        warn.append("no valid PixelSpacing: 1 mm assumed in-plane")
    spacings = {s.frame.pixel_spacing for s in slices}
    if len(spacings) > 1:
        warn.append(
            f"PixelSpacing differs between slices ({sorted(str(s) for s in spacings)[:3]}); the first slice's is used"
        )
    pos = np.array([s.frame.position for s in slices])
    n = len(slices)
    if n > 1:
        dist = pos @ normal
        steps = np.diff(dist)
        step = float(np.median(steps))
        gaps = [(i, float(d)) for i, d in enumerate(steps) if d > 1.5 * step]
        for i, d in gaps[:5]:
            warn.append(
                f"gap in slice positions: {d:.2f} mm between slices {i} and {i + 1} (usual step {step:.2f} mm); "
                f"about {max(1, round(d / step) - 1)} slice(s) missing"
            )
        regular = [d for d in steps if d <= 1.5 * step]
        tol = max(0.05, 0.01 * step)
        if regular and (max(regular) - min(regular)) > tol:
            warn.append(
                f"uneven slice spacing: steps from {min(regular):.2f} to {max(regular):.2f} mm (median {step:.2f} mm); "
                "3D distances are approximate"
            )
        along = pos[-1] - pos[0]
        u = along / np.linalg.norm(along)
        cos = float(np.clip(abs(u @ normal), -1.0, 1.0))
        tilt = math.degrees(math.acos(cos))
        if tilt > 0.5:
            warn.append(f"slices are sheared (gantry tilt about {tilt:.1f}°); the affine keeps the shear")
        slice_vec = u * step / (u @ normal)
    else:
        slice_vec = normal * (first.slice_spacing_hint or 1.0)
    affine = np.eye(4)
    affine[:3, 0] = row_dir * ps[1]
    affine[:3, 1] = col_dir * ps[0]
    affine[:3, 2] = slice_vec
    affine[:3, 3] = pos[0]
    return affine, warn


def _normal(iop: np.ndarray) -> np.ndarray:
    n = np.cross(iop[:3], iop[3:])
    return n / np.linalg.norm(n)


def _unique(items) -> list:
    seen, out = set(), []
    for it in items:
        if id(it) not in seen:
            seen.add(id(it))
            out.append(it)
    return out


def _series_text(inst: _dicom.Instance) -> str:
    return str(inst.series_number) if inst.series_number is not None else "(no number)"


def _label(inst: _dicom.Instance, vol: Volume, part: int, phase: tuple[int, int] | None) -> str:
    z = int(vol.meta.get("NumberOfSlices", vol.shape[0]))
    if z == 1:
        count = "1 image"
    elif inst.has_geometry:
        count = f"{z} slices"
    else:
        count = f"{z} frames" if inst.n_frames > 1 else f"{z} images"
    bits = [vol.modality, count, f"{inst.rows}×{inst.columns}"]
    if inst.series_number is not None:
        bits.append(f"series {inst.series_number}")
    if part:
        bits.append(f"part {part}")
    if phase:
        bits.append(f"phase {phase[0]}/{phase[1]}")
    return " · ".join(bits)


def _display_name(slices: list[_Slice]) -> str:
    names = sorted({s.inst.source.replace("\\", "/") for s in slices})
    if len(names) == 1:
        return os.path.basename(names[0]) or names[0]
    common = os.path.commonpath(names) if all("/" in n for n in names) else ""
    return common or f"{len(names)} files"
