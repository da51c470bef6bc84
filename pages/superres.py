"""Super-resolution page: 4x super-resolution of a slice by bicubic (A), the pixel-loss generator (B) and the GAN (C),
side by side with one window and linked zoom, |difference| maps, a blend of two arms, metrics and labelled exports.

Glue only: computation in ``medviz.superres`` (through ``medviz.ui.superres``), figures in ``medviz.superres.viz``.
"""

from __future__ import annotations

import streamlit as st

from medviz.superres.degrade import SCALE
from medviz.superres.export import SYNTHETIC_LABEL
from medviz.superres.infer import PIXEL_LOSS
from medviz.superres.viz import arm_title, comparison_figure
from medviz.types import MedvizError
from medviz.ui import loading, widgets
from medviz.ui import superres as ui
from medviz.ui.state import get_volume, set_volume

st.header("Super-resolution")
try:
    models = ui.sr_models()
except MedvizError as e:
    st.error(str(e))
    st.stop()
if not models["pixel"] and not models["gan"]:
    st.info(ui.TRAIN_HELP)
    st.stop()

ctrl, view = st.columns([1, 4], gap="medium")
with ctrl:
    pixel = st.selectbox("pixel-loss model (B)", models["pixel"], key="sr.pixel") if models["pixel"] else None
    gan = st.selectbox("GAN model (C)", models["gan"], key="sr.gan") if models["gan"] else None
    if not gan:
        st.caption("No GAN model (C) is registered: bicubic and the pixel-loss model are compared.")
    if st.button("LGG test patient (shared data)", key="sr.lgg", help="open a patient of the shared LGG FLAIR "
                 "set's test split (the split the training runs leave out)"):
        try:
            set_volume(ui.lgg_example_volume(), "LGG example")
        except (MedvizError, FileNotFoundError) as e:
            st.error(str(e))
    volume, token = widgets.image_source("sr", "one image (DICOM, NIfTI, PNG/JPEG)", "super-resolve one of its slices")
    if volume is None:
        if get_volume() is None:  # a new session, e.g. after a browser reload
            loading.open_example_button("sr")
        st.stop()
    index = widgets.slice_slider(volume.shape[0], f"sr.slice.{token}")
    channel = st.selectbox("colour channel (LGG PNG: 1 = FLAIR)", [0, 1, 2], index=ui.default_channel(volume),
                           key="sr.channel") if volume.is_rgb else None
    low_as_is = st.checkbox("already low resolution", key="sr.as_is",
                            help=f"super-resolve the slice as it is ({SCALE}x larger); without it the slice is the real "
                                 f"image, reduced {SCALE}x by area averaging, and every arm is measured against it")
    window = st.slider("window (shared by all images)", 0.0, 1.0, (0.0, 1.0), 0.01, key="sr.window")

with view:
    try:  # in the result area: its spinner replaces the old result while the new one is computed
        res = ui.compare_panel(pixel, gan, volume, index, channel, low_as_is, token)
    except MedvizError as e:
        st.error(str(e))
        st.stop()
    for note in res.notes:
        st.info(note)
    st.caption(widgets.slice_caption(index, volume.shape[0]) + (f" · colour channel {channel}" if channel is not None else "")
               + " · intensities divided by the slice maximum")
    st.warning(f"**{SYNTHETIC_LABEL}.** Every super-resolved image (bicubic included) is computed from the low-resolution "
               "input, not acquired. The models were trained on LGG FLAIR slices reduced 4x by area averaging; other "
               "images and real low-resolution scans differ from that.")
    if res.real is None:
        st.info("The slice is taken as the low-resolution input as it is: there is no real image to compare with, so "
                "no metrics and no difference maps are shown.")
    st.plotly_chart(comparison_figure(window=window, uirevision=token, **ui.figure_inputs(res)),
                    width="stretch", theme=None, key="sr.figure")

    arms = list(res.outputs)
    st.subheader("Blend two arms")
    b1, b2, b3 = st.columns([1, 1, 2])
    first = b1.selectbox("from", arms, index=arms.index(PIXEL_LOSS) if PIXEL_LOSS in arms else 0,
                         format_func=arm_title, key="sr.blend.first")
    second = b2.selectbox("to", arms, index=len(arms) - 1, format_func=arm_title, key="sr.blend.second")
    t = b3.slider("blend (0: from, 1: to)", 0.0, 1.0, 0.5, 0.05, key="sr.blend.t")
    blended, blend_name = ui.blend(res.outputs[first], res.outputs[second], t), ui.blend_name(res, first, second, t)
    st.plotly_chart(comparison_figure(window=window, uirevision=token, **ui.blend_figure_inputs(res, blended, blend_name)),
                    width="stretch", theme=None, key="sr.blend.figure")

    if res.metrics is not None:
        st.subheader("Metrics against the real image")
        st.dataframe(res.metrics, hide_index=True, key="sr.table")
        st.caption("PSNR and SSIM: higher is better; HFEN (high-frequency error): lower is better. Computed over the "
                   "pixels the last column names: the brain mask of the real slice.")
    st.markdown("**The GAN (C) can lose PSNR to the pixel-loss model (B)**: it is trained to look sharp rather than to "
                "match the real image pixel for pixel, and it can **hallucinate** structure that is not in the patient. "
                "The model cards below record how each model was trained and measured.")
    for name, file, card in ui.model_cards([n for n in (pixel, gan) if n]):
        with st.expander(f"Model card: {name} (weights/{file})"):
            st.markdown(card)

    st.subheader("Download (labelled synthetic)")
    choices = {arm: (out, res.models[arm]) for arm, out in res.outputs.items()} | {"blend": (blended, blend_name)}
    # preselect the pixel-loss model (B): the default model unless a GAN clears its bar (its model card says)
    pick = st.selectbox("image", list(choices), index=arms.index(PIXEL_LOSS) if PIXEL_LOSS in arms else len(arms) - 1,
                        key="sr.download",
                        format_func=lambda k: "the blend above" if k == "blend" else arm_title(k))
    try:
        files = ui.downloads(*choices[pick], res, volume, index, window)
    except MedvizError as e:
        st.error(str(e))
        st.stop()
    for col, f in zip(st.columns(len(files)), files):
        col.download_button(f.label, f.data, file_name=f.file_name, mime=f.mime, key=f"sr.dl.{f.label}")
