"""Measure a classifier's out-of-distribution detector: ``python -m medviz.evaluate --model NAME --ood --json``.

In-distribution: the model's own test split. Out of distribution: every other image family available
offline (:func:`medviz.classification.ood_data.evaluation_families`). Per family: AUROC of the score
(OOD = positive), FPR at 95 % TPR (the fraction of the family's images kept when the threshold keeps 95 %
of the in-distribution test images) and the abstention rate of the shipped rule (score above the val
threshold, or an input check), with the score alone and the input checks alone beside it.

Bar (issue #14): pooled AUROC >= 0.95 over the families counted in the bar, abstention >= 95 % on every
such family, and at most 5 % abstention on the model's test split. A family of the model's own domain
(Kermany chest X-rays for PneumoniaMNIST) is reported apart and not counted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from medviz.classification.card import ood_table as format_ood_table
from medviz.classification.ood import load_stats, split_images
from medviz.classification.ood_data import Family, evaluation_families, family_inputs
from medviz.models.ood_stats import OODError, auroc, threshold_for
from medviz.models.registry import ModelEntry

BAR_AUROC = 0.95
BAR_ABSTENTION = 0.95
BAR_ID_ABSTENTION = 0.05

__all__ = ["evaluate_ood", "format_ood_table", "fpr_at_95_tpr"]


def fpr_at_95_tpr(in_scores: np.ndarray, out_scores: np.ndarray) -> float:
    """Fraction of OOD scores at or below the threshold that keeps 95 % of the in-distribution scores."""
    return float(np.mean(np.asarray(out_scores) <= threshold_for(in_scores, 0.05)))


def _rates(scores: np.ndarray, reasons: list[list[str]], threshold: float) -> dict[str, float]:
    by_score = np.asarray(scores) > threshold
    by_input = np.array([bool(r) for r in reasons])
    return {"abstention": float(np.mean(by_score | by_input)), "abstention_score_only": float(np.mean(by_score)),
            "abstention_input_checks": float(np.mean(by_input))}


def evaluate_ood(model: Any, entry: ModelEntry, data: Path | None = None,
                 families: list[Family] | None = None) -> dict[str, Any]:
    """The OOD result object of ``entry`` with ``model`` (not modified); ``families`` default: every family."""
    spec = entry.spec
    stats = load_stats(entry)
    if stats is None:
        raise OODError(f"{spec.name!r} has no OOD statistics; fit them with "
                       f"`python -m medviz.classification.ood --model {spec.name}`")
    x_test, id_reasons = family_inputs(spec, split_images(spec, "test", data)[0])
    id_scores = stats.score_images(model, x_test)
    rows, pooled = [], []
    for fam in families if families is not None else evaluation_families(spec, data):
        if not len(fam):
            rows.append({"family": fam.name, "what": fam.what, "n": 0, "in_bar": fam.in_bar, "notes": fam.notes})
            continue
        x, reasons = family_inputs(spec, fam)
        s = stats.score_images(model, x)
        if fam.in_bar:
            pooled.append(s)
        rows.append({"family": fam.name, "what": fam.what, "n": int(len(s)), "in_bar": fam.in_bar,
                     "auroc": auroc(id_scores, s), "fpr_at_95_tpr": fpr_at_95_tpr(id_scores, s),
                     **_rates(s, reasons, stats.threshold), "score_median": float(np.median(s)), "notes": fam.notes})
    all_ood = np.concatenate(pooled) if pooled else np.array([])
    id_row = {"what": f"{spec.dataset} test split", "n": int(len(id_scores)),
              **_rates(id_scores, id_reasons, stats.threshold), "score_median": float(np.median(id_scores))}
    pooled_row = {"n": int(all_ood.size), "auroc": auroc(id_scores, all_ood),
                  "fpr_at_95_tpr": fpr_at_95_tpr(id_scores, all_ood) if all_ood.size else float("nan")}
    failing = [f"{r['family']}: abstention {r['abstention']:.3f} < {BAR_ABSTENTION}" for r in rows
               if r["in_bar"] and r["n"] and r["abstention"] < BAR_ABSTENTION]
    if not pooled_row["auroc"] >= BAR_AUROC:
        failing.append(f"pooled AUROC {pooled_row['auroc']:.3f} < {BAR_AUROC}")
    if id_row["abstention"] > BAR_ID_ABSTENTION:
        failing.append(f"test-split abstention {id_row['abstention']:.3f} > {BAR_ID_ABSTENTION}")
    low_auc = [r["family"] for r in rows if r["in_bar"] and r["n"] and r["auroc"] < BAR_AUROC]
    return {"model": spec.name, "task": entry.task, "dataset": spec.dataset, "split": "test", "ood": True,
            "score": stats.score, "threshold": stats.threshold, "val_abstention": stats.val_abstention,
            "in_distribution": id_row, "families": rows, "pooled": pooled_row,
            "bar": {"auroc_min": BAR_AUROC, "abstention_min": BAR_ABSTENTION, "id_abstention_max": BAR_ID_ABSTENTION,
                    "met": not failing, "failing": failing, "families_auroc_below_bar": low_auc},
            "sha256": spec.sha256, "ood_sha256": spec.ood.sha256}
