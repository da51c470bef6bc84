"""Evaluate page: a shipped classifier on its official test split -- confusion matrix, ROC with an
operating threshold, reliability before/after temperature scaling, and the most confident errors
(each opens in the Viewer).

Glue only: computation in ``medviz.classification.evaluate.operating_view``, figures in
``medviz.classification.viz``.
"""

from __future__ import annotations

import streamlit as st

from medviz.classification.evaluate import operating_view
from medviz.classification.metrics import default_positive
from medviz.classification.viz import confusion_figure, reliability_figure, roc_figure
from medviz.types import MedvizError
from medviz.ui import classification as ui
from medviz.ui.state import set_volume

st.header("Evaluate")
entries = ui.classifiers_or_stop()

name = st.selectbox("model", list(entries), key="evaluate.model", format_func=lambda n: entries[n].label)
try:
    run = ui.cached_evaluation(name, "test")
except (MedvizError, FileNotFoundError) as e:
    st.error(str(e))
    st.stop()
spec = entries[name].spec
classes = run.classes
st.caption(f"{spec.dataset} official test split, n = {len(run.labels)}; "
           f"`python -m medviz.evaluate --model {name}` prints the same numbers with 95 % CIs.")

ctrl, figs = st.columns([1, 3], gap="medium")
with ctrl:
    positive = st.selectbox("positive class", classes, index=default_positive(classes), key="evaluate.positive")
    pos = classes.index(positive)
    threshold = st.slider("operating threshold (calibrated probability)", 0.0, 1.0, 0.5, 0.01, key="evaluate.threshold")
    view = operating_view(run, pos, threshold)
    st.metric("sensitivity", f"{view.point['sensitivity']:.3f}")
    st.metric("specificity", f"{view.point['specificity']:.3f}")
    st.metric("ECE", f"{view.ece_calibrated:.3f}", f"{view.ece_calibrated - view.ece_raw:+.3f} vs uncalibrated",
              delta_color="inverse")
    rows = [{"method": "this model", "AUC": view.auc, "ACC": view.acc}]
    rows += [{"method": r["method"], "AUC": r["auc"], "ACC": r["acc"]} for r in spec.references]
    st.dataframe(rows, hide_index=True, column_config={"AUC": st.column_config.NumberColumn(format="%.3f"),
                                                      "ACC": st.column_config.NumberColumn(format="%.3f")})

with figs:
    a, b = st.columns(2)
    a.plotly_chart(roc_figure(view.roc, view.point, positive), key="evaluate.roc", width="stretch")
    b.plotly_chart(confusion_figure(view.confusion, classes), key="evaluate.cm", width="stretch")
    b.caption("Binary: predictions at the threshold; multi-class: arg-max.")
    st.plotly_chart(reliability_figure(view.reliability_raw, view.reliability_calibrated, view.ece_raw,
                                       view.ece_calibrated), key="evaluate.rel", width="stretch")

st.subheader("Most confident errors")
errors = view.errors
if not errors:
    st.info("No errors on this split.")
cols = st.columns(6)
for k, err in enumerate(errors):
    with cols[k % 6]:
        i = err["index"]
        st.image(run.images[i], width=112, clamp=True)
        st.caption(f"#{i}: true {classes[err['label']]}, predicted {classes[err['predicted']]} ({err['confidence']:.0%})")
        if st.button("open in viewer", key=f"evaluate.open.{i}"):
            vol = ui.volume_from_image(run.images[i], f"{spec.dataset} test #{i}", spec.input.modality)
            set_volume(vol, f"{spec.dataset} test image #{i}")
            st.switch_page("pages/viewer.py")
