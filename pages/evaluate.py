"""Evaluate page: a shipped classifier on its official test split -- confusion matrix, ROC with an
operating threshold, reliability before/after temperature scaling, and the most confident errors
(each opens in the Viewer).

Glue only: computation in ``medviz.evaluate``, figures in ``medviz.classification.viz``.
"""

from __future__ import annotations

import streamlit as st

from medviz.classification.calibration import expected_calibration_error, reliability
from medviz.classification.metrics import (
    classification_metrics,
    confident_errors,
    confusion,
    default_positive,
    operating_point,
    roc,
    thresholded_predictions,
)
from medviz.classification.viz import confusion_figure, reliability_figure, roc_figure
from medviz.types import MedvizError
from medviz.ui import classification as ui
from medviz.ui.state import set_volume

st.header("Evaluate")
entries = ui.classifiers_or_stop()

name = st.selectbox("model", list(entries), key="evaluate.model")
try:
    run = ui.cached_evaluation(name, "test")
except (MedvizError, FileNotFoundError) as e:
    st.error(str(e))
    st.stop()
entry = entries[name]
classes = run.classes
st.caption(f"{entry.get('dataset')} official test split, n = {len(run.labels)}; "
           f"`python -m medviz.evaluate --model {name}` prints the same numbers with 95 % CIs.")

ctrl, figs = st.columns([1, 3], gap="medium")
with ctrl:
    positive = st.selectbox("positive class", classes, index=default_positive(classes), key="evaluate.positive")
    pos = classes.index(positive)
    threshold = st.slider("operating threshold (calibrated probability)", 0.0, 1.0, 0.5, 0.01, key="evaluate.threshold")
    point = operating_point(run.probs_calibrated, run.labels, pos, threshold)
    st.metric("sensitivity", f"{point['sensitivity']:.3f}")
    st.metric("specificity", f"{point['specificity']:.3f}")
    ece0 = expected_calibration_error(run.probs, run.labels)
    ece1 = expected_calibration_error(run.probs_calibrated, run.labels)
    st.metric("ECE", f"{ece1:.3f}", f"{ece1 - ece0:+.3f} vs uncalibrated", delta_color="inverse")
    ours = classification_metrics(run.probs_calibrated, run.labels)
    rows = [{"method": "this model", "AUC": ours["auc"], "ACC": ours["acc"]}]
    rows += [{"method": r["method"], "AUC": r["auc"], "ACC": r["acc"]} for r in entry.get("references", [])]
    st.dataframe(rows, hide_index=True, column_config={"AUC": st.column_config.NumberColumn(format="%.3f"),
                                                      "ACC": st.column_config.NumberColumn(format="%.3f")})

with figs:
    a, b = st.columns(2)
    curve = roc(run.probs_calibrated, run.labels, pos)
    a.plotly_chart(roc_figure(curve, point, positive), key="evaluate.roc", width="stretch")
    pred = thresholded_predictions(run.probs_calibrated, pos, threshold)
    b.plotly_chart(confusion_figure(confusion(run.labels, pred, len(classes)), classes), key="evaluate.cm",
                   width="stretch")
    b.caption("Binary: predictions at the threshold; multi-class: arg-max.")
    st.plotly_chart(reliability_figure(reliability(run.probs, run.labels), reliability(run.probs_calibrated, run.labels),
                                       ece0, ece1), key="evaluate.rel", width="stretch")

st.subheader("Most confident errors")
errors = confident_errors(run.probs_calibrated, run.labels, 12)
if not errors:
    st.info("No errors on this split.")
cols = st.columns(6)
for k, err in enumerate(errors):
    with cols[k % 6]:
        i = err["index"]
        st.image(run.images[i], width=112, clamp=True)
        st.caption(f"#{i}: true {classes[err['label']]}, predicted {classes[err['predicted']]} ({err['confidence']:.0%})")
        if st.button("open in viewer", key=f"evaluate.open.{i}"):
            vol = ui.volume_from_image(run.images[i], f"{entry.get('dataset')} test #{i}",
                                       entry.raw["input"]["modality"])
            set_volume(vol, f"{entry.get('dataset')} test image #{i}")
            st.switch_page("pages/viewer.py")
