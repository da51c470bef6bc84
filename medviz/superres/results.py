"""Stored test results of a super-resolution model and the card section made from them.

``python -m medviz.evaluate --model NAME --record`` keeps its result beside the weights in
``<name>.results.json`` (:func:`store_result`)::

    {"evaluations": {<split>: {"command": str, "result": <the evaluate contract>}},  # the latest per split
     "test_looks": [{"command": str, "bar_met": bool}, ...]}                         # every test-split one

and rewrites the card ``<name>.md``. The section of the card (:func:`results_section`) and the evaluate
contract's ``bar`` both come from :func:`compute_bar`, on the stored numbers: nothing in it is typed.

The bar of issue #17, point 4:

* a pixel-loss model (arm B) must gain at least :data:`PSNR_GAIN_DB` dB of brain PSNR over bicubic (arm A);
* a GAN (arm C) must beat its pixel-loss twin B on HFEN and on the in-house Fréchet distance (both lower),
  keep the downstream Dice of the segmenter within :data:`DICE_TOLERANCE` of B's (``C >= B - 0.01``), and give
  the segmenter no more false-positive components than B does.
"""

from __future__ import annotations

import fcntl
import json
from pathlib import Path
from typing import Any, Callable

from medviz.superres.infer import BICUBIC, GAN, PIXEL_LOSS

#: A pixel-loss model's least brain-PSNR gain over bicubic, in dB.
PSNR_GAIN_DB = 2.0
#: How far a GAN's downstream Dice may fall below its pixel-loss twin's.
DICE_TOLERANCE = 0.01
#: The metrics of every arm, in table order, with their column titles (units) and number formats.
METRIC_COLUMNS = (("psnr", "PSNR (dB)", ".2f"), ("ssim", "SSIM", ".4f"), ("hfen", "HFEN", ".4f"),
                  ("tumour_psnr", "tumour PSNR (dB)", ".2f"), ("fid_inhouse", "in-house FD", ".3f"),
                  ("downstream_dice", "downstream Dice", ".4f"),
                  ("false_positive_components", "FP components", "d"))
#: Words for each arm.
ARM_LABELS = {BICUBIC: "A: bicubic", PIXEL_LOSS: "B: pixel loss", GAN: "C: GAN"}
FD_NOTE = ("The Fréchet distance (FD) is in-house: it is computed on the bottleneck features of the shipped "
           "segmenter (`medviz.superres.features`), not on Inception features, so it is not comparable with "
           "published FIDs.")


def read_results(path: Path) -> dict[str, Any]:
    """The stored results ``<name>.results.json`` (``{}`` when there are none)."""
    return json.loads(Path(path).read_text()) if Path(path).exists() else {}


def _check(value: float, against: float, met: bool, rule: str) -> dict[str, Any]:
    return {"value": float(value), "against": float(against), "met": bool(met), "rule": rule}


def compute_bar(mode: str, arms: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The bar of the issue (module docstring) from the arms' headline numbers.

    Args:
        mode: ``"pixel"`` or ``"gan"``, the evaluated model's arm.
        arms: :data:`BICUBIC`, :data:`PIXEL_LOSS` (and :data:`GAN` for a GAN) -> their metrics
            (``psnr`` in dB, ``hfen``, ``fid_inhouse``, ``downstream_dice``, ``false_positive_components``).

    Returns:
        ``{"mode", "checks": {name: {"value", "against", "met", "rule"}}, "met"}``; a NaN value never meets.
    """
    if mode == "pixel":
        a, b = arms[BICUBIC], arms[PIXEL_LOSS]
        gain = b["psnr"] - a["psnr"]
        checks = {"psnr_gain_db": _check(gain, PSNR_GAIN_DB, gain >= PSNR_GAIN_DB,
                                         f"brain PSNR of B minus A >= {PSNR_GAIN_DB:g} dB")}
    else:
        b, c = arms[PIXEL_LOSS], arms[GAN]
        checks = {
            "hfen_lower": _check(c["hfen"], b["hfen"], c["hfen"] < b["hfen"], "HFEN of C < HFEN of B"),
            "fid_inhouse_lower": _check(c["fid_inhouse"], b["fid_inhouse"], c["fid_inhouse"] < b["fid_inhouse"],
                                        "in-house FD of C < in-house FD of B"),
            "downstream_dice_kept": _check(c["downstream_dice"], b["downstream_dice"],
                                           c["downstream_dice"] >= b["downstream_dice"] - DICE_TOLERANCE,
                                           f"downstream Dice of C >= Dice of B - {DICE_TOLERANCE:g}"),
            "false_positives_not_more": _check(c["false_positive_components"], b["false_positive_components"],
                                               c["false_positive_components"] <= b["false_positive_components"],
                                               "false-positive components of C <= those of B"),
        }
    return {"mode": mode, "checks": checks, "met": all(v["met"] for v in checks.values())}


def arms_of(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The arms of an evaluate result, in order A, B(, C): arm name -> its metrics (with ``model`` when known)."""
    arms = {name: dict(v) for name, v in result["baselines"].items()}
    arms[PIXEL_LOSS if result["mode"] == "pixel" else GAN] = {**{k: result[k] for k, _, _ in METRIC_COLUMNS},
                                                              "model": result["model"],
                                                              "seconds_per_slice": result.get("seconds_per_slice")}
    return {k: arms[k] for k in (BICUBIC, PIXEL_LOSS, GAN) if k in arms}


def _number(value: Any, fmt: str) -> str:
    if value is None:
        return "–"
    return format(int(value), fmt) if fmt == "d" else format(float(value), fmt)


def bar_sentence(result: dict[str, Any], twin: str | None = None) -> str:
    """The bar of the issue in words, computed from ``result``'s numbers (see :func:`compute_bar`)."""
    bar = compute_bar(result["mode"], arms_of(result))
    parts = []
    for check in bar["checks"].values():
        parts.append(f"{check['rule']}: {check['value']:.4g} against {check['against']:.4g}, "
                     f"{'met' if check['met'] else 'NOT met'}")
    text = (f"Bar of issue #17 ({'B against A' if result['mode'] == 'pixel' else 'C against B'}) "
            f"{'met' if bar['met'] else 'NOT met'}: " + "; ".join(parts) + ".")
    if result["mode"] == "gan" and not bar["met"]:
        text += (f" The pixel-loss model `{twin or result['baselines'][PIXEL_LOSS].get('model', '?')}` stays the "
                 "default; this GAN is a recorded negative result.")
    return text


def _interval(d: dict[str, Any], fmt: str) -> str:
    lo, hi = d.get("ci") or (None, None)
    ci = "" if lo is None else f" [{format(lo, '+' + fmt)}, {format(hi, '+' + fmt)}]"
    return format(d["mean"], "+" + fmt) + ci


def _differences_table(result: dict[str, Any]) -> list[str]:
    columns = [(k, title, "d" if fmt == "d" else fmt) for k, title, fmt in METRIC_COLUMNS]
    lines = ["| difference (95 % patient-bootstrap interval) | " + " | ".join(t for _, t, _ in columns) + " |",
             "|---|" + "---|" * len(columns)]
    for name, diff in result["differences"].items():
        cells = [(_interval(diff[k], ".0f" if fmt == "d" else fmt) if k in diff else "–") for k, _, fmt in columns]
        lines.append(f"| {name.replace('_minus_', ' − ')} | " + " | ".join(cells) + " |")
    return lines


def _arms_table(result: dict[str, Any]) -> list[str]:
    lines = ["| arm | model | " + " | ".join(t for _, t, _ in METRIC_COLUMNS) + " | s / slice |",
             "|---|---|" + "---|" * (len(METRIC_COLUMNS) + 1)]
    for name, arm in arms_of(result).items():
        cells = [_number(arm.get(k), fmt) for k, _, fmt in METRIC_COLUMNS]
        lines.append(f"| {ARM_LABELS[name]} | {arm.get('model', '–')} | " + " | ".join(cells)
                     + f" | {_number(arm.get('seconds_per_slice'), '.4f')} |")
    ref = result["reference"]
    cells = ["–" if k not in ref else _number(ref[k], fmt) for k, _, fmt in METRIC_COLUMNS]
    lines.append("| real FLAIR (segmenter reference) | – | " + " | ".join(cells) + " | – |")
    return lines


def results_section(spec: Any, results: dict[str, Any]) -> str:
    """The card's ``## Test results`` section (Markdown) from the stored ``results`` (module docstring).

    The test-split evaluation is shown when there is one, else the latest stored evaluation of another split.
    """
    evaluations = results.get("evaluations") or {}
    if not evaluations:
        return "## Test results\nNot yet evaluated (`python -m medviz.evaluate --model NAME --record`)."
    split = "test" if "test" in evaluations else sorted(evaluations)[-1]
    stored = evaluations[split]
    r = stored["result"]
    looks = results.get("test_looks") or []
    seg = r["segmenter"]
    lines = ["## Test results",
             f"`{stored['command']}`",
             "",
             f"Split `{r['split']}`: {r['n_patients']} patients, {r['n_slices']} slices degraded {r['scale']}x "
             f"and super-resolved by every arm; {r['n_brain_slices']} brain slices scored (PSNR, SSIM, HFEN "
             f"inside the brain mask, mean over slices), {r['n_tumour_slices']} tumour slices (tumour PSNR). "
             f"Downstream: segmenter `{seg['name']}` (sha256 {seg['sha256'][:12]}…) on each arm's FLAIR with the "
             "real T1 and T1c; Dice per patient (3D), mean over patients; false-positive components summed over "
             "patients.",
             "",
             *_arms_table(r),
             "",
             f"Paired differences, mean over the same slices (patients), with 95 % intervals from "
             f"{r['bootstrap']} patient-bootstrap resamples ({r['fid_bootstrap']} for the FD):",
             "",
             *_differences_table(r),
             "",
             bar_sentence(r, getattr(spec, "twin", None)),
             "",
             FD_NOTE,
             "",
             f"Test looks recorded: {len(looks)}." + ("" if not looks else " Commands:"),
             *[f"{i}. `{look['command']}`" for i, look in enumerate(looks, 1)]]
    return "\n".join(lines)


def store_result(entry: Any, result: dict[str, Any], command: str,
                 render_card: Callable[[Any, dict[str, Any]], str]) -> dict[str, Any]:
    """Keep ``result`` beside the weights (``<name>.results.json``, under a file lock: evaluations may finish
    at once) and rewrite the card ``<name>.md`` with ``render_card(spec, results)``.

    ``render_card`` is :func:`medviz.superres.card.render_card`, passed in by the evaluator so that this
    module does not import the card module (the card imports this one).

    Returns:
        every stored result (the new ``<name>.results.json``).
    """
    wd = Path(entry.weights_dir)
    path = wd / f"{entry.name}.results.json"
    with open(wd / f"{entry.name}.results.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        results = read_results(path)
        results.setdefault("evaluations", {})[result["split"]] = {"command": command, "result": result}
        if result["split"] == "test":
            met = compute_bar(result["mode"], arms_of(result))["met"]
            results.setdefault("test_looks", []).append({"command": command, "bar_met": bool(met)})
        path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
        (wd / f"{entry.name}.md").write_text(render_card(entry.spec, results))
    return results
