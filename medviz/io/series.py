"""Group parsed DICOM instances into series and build one :class:`~medviz.types.Volume` each.

Rules (see RELIABILITY.md BI-13..BI-18):
    * Group by SeriesInstanceUID (at most ``Limits.max_series`` series per upload), then into *stacks* of
      frames sharing Rows/Columns, colour and ImageOrientationPatient. The largest stack is the series;
      larger extra stacks become separate choices ("part 2"). Stacks of fewer than 3 frames (or ImageType
      LOCALIZER) are not part of a volume: they are offered as plain stacks without 3D geometry, one per
      image size, with a note that counts them per series (a series of only such images, e.g. a 3-plane
      localizer or radial slices, is one such stack). Series sharing a SeriesNumber are named "N [k of n]".
    * Sort by ImagePositionPatient projected on the slice normal (IOP row × column), never by
      file name or upload order. Identical SOPInstanceUIDs are de-duplicated; several frames at
      one position with different UIDs are "multi-phase/duplicate positions": split into phases
      when every position has the same count, otherwise the first per position is kept.
    * Every volume is evenly spaced: a stack is split at gaps and where its step changes, so that each
      slice lies within max(0.05 mm, 2 % of the step) of where its file says; a stack too irregular for
      that (more runs than a third of its slices) is shown as a plain stack without 3D geometry. Splits
      are noted with the values in mm; gantry tilt is kept in the affine and warned. Without IPP/IOP
      the frames are stacked by InstanceNumber (then frame number) and the 3D geometry is unknown.
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
from medviz.io import limits as _lim
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
    series = _capped(by_series, out)
    _name_series(series)
    for members in series:
        members = _dedupe_instances(members, out)
        for whole, part, phase, stack_note in _stacks(members, out):
            runs = [(whole, stack_note)] if stack_note else _regular_runs(whole, out)
            for k, (stack, note) in enumerate(runs):
                built = _built(stack, decoded, out, part, phase, (k, len(runs)), note)
                if built is not None:
                    out.built.append(built)
        decoded.clear()  # instances never span series: free the decoded frames early
    out.built.sort(key=lambda b: b.sort_key)
    return out


def _capped(by_series: dict[str, list[_dicom.Instance]], out: Assembly) -> list[list[_dicom.Instance]]:
    """The series to build, in series-number order, at most :attr:`~medviz.config.Limits.max_series` of them;
    the others are counted in a note and never decoded."""
    ordered = sorted(by_series.values(), key=lambda m: (min((i.series_number for i in m if i.series_number is not None),
                                                            default=1 << 30), min(i.source for i in m)))
    cap = _lim.limits().max_series
    if len(ordered) > cap:
        out.notes.append(f"the upload holds {len(ordered):,} series: the first {cap} (by series number) are offered; "
                         f"the other {len(ordered) - cap:,} were not loaded")
    return ordered[:cap]


def _name_series(series: list[list[_dicom.Instance]]) -> None:
    """Give each series the text its notes and labels use: its SeriesNumber, with "[k of n]" when several
    series of the upload share that number (so their notes are never merged or confused)."""
    numbers = [m[0].series_number for m in series]
    seen: dict[int | None, int] = defaultdict(int)
    for members, number in zip(series, numbers):
        seen[number] += 1
        text = str(number) if number is not None else "(no number)"
        if numbers.count(number) > 1:
            text += f" [{seen[number]} of {numbers.count(number)}]"
        for inst in members:
            inst.series_text = text


GAP_FACTOR = 1.5  # a step longer than this many times the median step is a gap
EVEN_TOL_MM = 0.05  # a slice may sit this far (or 2 % of the step) from its place on the uniform grid


def _regular_runs(slices: list[_Slice], out: Assembly) -> list[tuple[list[_Slice], str]]:
    """Split a position-sorted stack where its spacing is not regular — at gaps and where the step changes —
    so that every volume's uniform affine puts each slice within ``max(EVEN_TOL_MM, 2 % of the step)`` of where
    its file says (a uniform affine across a gap or a change of step would misplace the slices after it).

    Returns ``(slices, stack_note)`` pairs: a regular run has an empty note; a stack so irregular that it would
    fall apart into many short runs comes back whole with a note, to be shown without 3D geometry. Stacks
    without patient geometry come back whole."""
    if len(slices) < 3 or not slices[0].inst.has_geometry or any(s.frame.position is None for s in slices):
        return [(slices, "")]
    normal = _normal(slices[0].frame.orientation)
    d = np.array([float(s.frame.position @ normal) for s in slices])
    step = float(np.median(np.diff(d)))
    if step <= 0:
        return [(slices, "")]
    gaps = [i + 1 for i, g in enumerate(np.diff(d)) if g > GAP_FACTOR * step]
    tol = max(EVEN_TOL_MM, 0.02 * step)
    bounds = [(a + lo, a + hi) for a, b in zip([0, *gaps], [*gaps, len(d)]) for lo, hi in _even_bounds(d[a:b], tol)]
    if len(bounds) == 1:
        return [(slices, "")]
    series = _series_text(slices[0].inst)
    if len(bounds) > max(2, len(slices) // 3):
        steps = np.diff(d)
        return [(slices, f"slice spacing is irregular (steps from {steps.min():.2f} to {steps.max():.2f} mm): the "
                         f"{len(slices)} slices are shown as a stack in position order without 3D geometry, so that "
                         "no slice is shown at a position its file does not give")]
    cuts = []
    for (_, end), (nxt, _) in zip(bounds, bounds[1:]):
        gap = d[nxt] - d[end - 1]
        kind = "a gap of" if gap > GAP_FACTOR * step else "a change of step,"
        cuts.append(f"{kind} {gap:.2f} mm after slice {end}")
    out.notes.append(
        f"series {series} is not evenly spaced ({'; '.join(cuts[:5])}; usual step {step:.2f} mm): split into "
        f"{len(bounds)} stacks with regular spacing, so every slice keeps its true position"
    )
    return [(slices[a:b], "") for a, b in bounds]


def _even_bounds(d: np.ndarray, tol: float) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` index ranges of ``d`` (sorted positions, mm) in which every position lies within
    ``tol`` of the straight line through the range's first and last position (greedy, in order)."""
    bounds, start = [], 0
    for i in range(2, len(d)):
        k = np.arange(i - start + 1)
        line = d[start] + k * (d[i] - d[start]) / (i - start)
        if np.max(np.abs(d[start:i + 1] - line)) > tol:
            bounds.append((start, i))
            start = i
    bounds.append((start, len(d)))
    return bounds


def _built(stack: list[_Slice], decoded: dict[int, _pixels.Decoded | None], out: Assembly, part: int,
           phase: tuple[int, int] | None, run: tuple[int, int], stack_note: str = "") -> Built | None:
    """One volume of the series with its label and sort key (None when nothing could be decoded); a failure
    becomes a problem of this stack only. ``run``: (index, count) of the regular stacks of an unevenly spaced
    series; ``stack_note``: why the images are laid out as a plain stack without 3D geometry (empty: they
    are not)."""
    try:
        vol = _build(stack, decoded, out, stack_note)
    except Exception as e:  # per-series boundary: one broken series must not stop the others
        stage = f"could not build series {_series_text(stack[0].inst)}"
        out.problems.append(FileProblem(_display_name(stack), describe(e, stage)))
        return None
    if vol is None:
        return None
    first = stack[0].inst
    label = _label(first, vol, part, phase) + (f" · stack {run[0] + 1} of {run[1]}" if run[1] > 1 else "")
    if stack_note:
        label += " · no 3D"
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


def _stacks(members: list[_dicom.Instance],
            out: Assembly) -> list[tuple[list[_Slice], int, tuple[int, int] | None, str]]:
    """Split one series into stacks; returns ``(slices, part, phase, stack_note)`` for each volume to build
    (``stack_note``: why images of other planes or sizes are laid out without 3D geometry; empty otherwise)."""
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
    result: list[tuple[list[_Slice], int, tuple[int, int] | None, str]] = []
    extra: list[list[_Slice]] = []
    parts = 0
    for key, _ori, slices in groups:
        solo = bool(key[5])
        if result and not solo and (len(slices) < MIN_STACK or key[4]):
            extra.append(slices)
            continue
        part = 0
        if not solo:
            parts += 1
            part = parts if parts > 1 else 0
        for phase_slices, phase in _phases(slices, out):
            result.append((phase_slices, part, phase, ""))
    if extra:
        result += _other_planes(extra, result, members[0], out)
    return result


OTHER_PLANES_NOTE = ("images of different planes or sizes, shown as a stack in InstanceNumber order without 3D "
                     "geometry: distances within an image hold, distances across images do not")


def _other_planes(extra: list[list[_Slice]], result: list, first: _dicom.Instance,
                  out: Assembly) -> list[tuple[list[_Slice], int, tuple[int, int] | None, str]]:
    """Offer the images left out of a series' volumes (localizers, other orientations, odd sizes) as their own
    choices: one plain stack (no 3D geometry) per image size, in InstanceNumber order. A series made only of
    such images (a 3-plane localizer, radial slices) becomes one stack of all of them, not one image of many."""
    only_small = len(result) == 1 and len(result[0][0]) < MIN_STACK
    if only_small:  # no real volume: the first small group goes back into the stack with the rest
        extra = [result.pop()[0], *extra]
    by_size: dict[tuple, list[_Slice]] = defaultdict(list)
    for slices in extra:
        for sl in slices:
            by_size[(sl.inst.rows, sl.inst.columns, sl.inst.is_colour)].append(sl)
    stacks = []
    for slices in by_size.values():
        slices.sort(key=lambda sl: (sl.inst.instance_number if sl.inst.instance_number is not None else 1 << 30,
                                    sl.inst.source, sl.frame.index))
        stacks.append((slices, 0 if only_small and not stacks else 90 + len(stacks), None, OTHER_PLANES_NOTE))
    n = sum(len(sl) for sl, *_ in stacks)
    if only_small:
        out.notes.append(f"series {_series_text(first)}: its {n} images lie in {len(extra)} different planes or "
                         f"sizes, so they form no 3D volume; offered as {len(stacks)} stack(s) without 3D geometry")
    else:
        out.notes.append(f"series {_series_text(first)}: {n} image(s) in other planes or sizes, or localizers, are "
                         f"not part of its volume; offered as {len(stacks)} separate stack(s) without 3D geometry")
    return stacks


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


def _build(stack: list[_Slice], cache: dict[int, _pixels.Decoded | None], out: Assembly,
           stack_note: str = "") -> Volume | None:
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
    placed = _place(np.stack([a for _, a, _ in kept]), slices, first, spacing_known, warnings, stack_note)
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
           warnings: list[str], stack_note: str = "") -> _Placed:
    """Lay the stacked ``(n, rows, cols[, 3])`` array out in patient space (reoriented to LPS+) when the
    files have geometry, else (or with a ``stack_note``: why not) as a plain stack with the spacing the files
    give; appends to ``warnings``."""
    headers_order = list(range(len(slices)))
    plain = bool(stack_note) and len(slices) > 1
    if plain:
        warnings.append(stack_note)
        if len({s.frame.pixel_spacing for s in slices}) > 1:
            warnings.append("PixelSpacing differs between the images of this stack; the first image's is used")
    if first.has_geometry and not plain:
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
    if len(slices) > 1 and not plain:
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
        step = float(dist[-1] - dist[0]) / (n - 1)  # runs are regular (see _regular_runs): exact at both ends
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
    if inst.series_text:
        return inst.series_text
    return str(inst.series_number) if inst.series_number is not None else "(no number)"


def _label(inst: _dicom.Instance, vol: Volume, part: int, phase: tuple[int, int] | None) -> str:
    z = int(vol.meta.get("NumberOfSlices", vol.shape[0]))
    if z == 1:
        count = "1 image"
    elif inst.has_geometry and vol.orientation != "unknown":
        count = f"{z} slices"
    else:
        count = f"{z} frames" if inst.n_frames > 1 else f"{z} images"
    bits = [vol.modality, count, f"{inst.rows}×{inst.columns}"]
    if inst.series_number is not None:
        bits.append(f"series {_series_text(inst)}")
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
