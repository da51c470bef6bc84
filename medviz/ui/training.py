"""Training page widgets: options form, live run view, data summary, evaluation report, promotion.

The :class:`~medviz.train.jobs.JobManager` is one object per server (``st.cache_resource``); each
browser session gets a random owner token in ``st.session_state`` and sees only its own runs and
runs shared with it by code. Uploaded data sets are kept in a per-session folder that goes away with
the session (:class:`~medviz.train.uploads.SessionUploads` in ``st.session_state``).
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import numpy as np
import pandas  # noqa: F401  (imported before any training thread: plotly imports it lazily, racing the thread)
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from medviz.options import OptionInfo, describe
from medviz.train.engine import TrainConfig
from medviz.train.eta import progress_numbers
from medviz.train.jobs import Job, JobManager
from medviz.train.paths import DataSourceError, check_data_source, check_option_paths
from medviz.train.presets import quick_demo
from medviz.train.registry import get_task_class
from medviz.train.uploads import SessionUploads

OWNER_KEY = "medviz.train.owner"
JOB_KEY = "medviz.train.job"
REPORT_KEY = "medviz.train.report"
UPLOADS_KEY = "medviz.train.uploads"
DEMO_KEY = "medviz.train.demo_preset"  # the task whose quick demo preset was applied last
MAX_STEP_POINTS = 300  # step-loss points drawn by the live view
STATUS_REFRESH_S = 2.0  # the live view's progress bar, status, ETA, throughput and memory
CURVES_REFRESH_S = 6.0  # the live view's loss curves (only redrawn when new events have come)
CURVES_KEY = "medviz.train.curves"  # (job id, events signature, figure) last drawn in this session


@st.cache_resource
def get_manager() -> JobManager:
    """The server's job manager (shared by sessions; jobs are filtered by owner token)."""
    return JobManager()


def owner_token() -> str:
    """This browser session's random owner token (never shown, never in a URL)."""
    if OWNER_KEY not in st.session_state:
        st.session_state[OWNER_KEY] = secrets.token_urlsafe(24)
    return st.session_state[OWNER_KEY]


# -- options --------------------------------------------------------------------------------------------
def _seed(key: str, value: Any) -> None:
    """Give the widget ``key`` its first value through the session state (never also as a widget default,
    so a value set by the quick demo preset shows without Streamlit's duplicate-default warning)."""
    if key not in st.session_state:
        st.session_state[key] = value


def widget_value(o: OptionInfo, value: Any) -> Any:
    """What the widget of option ``o`` holds to show ``value`` (text for lists and empty-able numbers)."""
    if o.type is bool and o.container is None:
        return bool(value)
    if o.container is not None:
        return " ".join(str(v) for v in (value or []))
    if o.choices:
        return value
    if o.type in (int, float) and not o.optional:
        return o.type(value)
    return "" if value is None else str(value)


def _option_widget(o: OptionInfo, key: str, where: Any) -> tuple[Any, str | None]:
    """One widget for option ``o`` (labelled with its words, ranged by its metadata); returns the value
    and what is wrong with it (None: valid; an invalid entry falls back to the default)."""
    help_ = o.help or None
    _seed(key, widget_value(o, o.default))
    if o.type is bool and o.container is None:
        return where.checkbox(o.label, key=key, help=help_), None
    if o.container is not None:
        raw = where.text_input(o.label, key=key, help=f"{o.help} (space-separated)".strip())
        if not raw.strip():
            return (None, None) if o.optional else (o.default, f"{o.label} needs a value")
        try:
            value = o.convert(raw.split())
        except ValueError:
            return o.default, f"{o.label}: {raw.strip()!r} is not a list of {o.type.__name__} values"
        return value, _words(o, o.problem(value))
    if o.choices:
        choices = [None, *o.choices] if o.optional else list(o.choices)
        if st.session_state[key] not in choices:
            st.session_state[key] = choices[0]
        value = where.selectbox(o.label, choices, key=key, help=help_,
                                format_func=lambda c: "(default)" if c is None else str(c))
        return value, None
    if o.type in (int, float) and not o.optional:
        cast = o.type
        value = where.number_input(o.label, min_value=None if o.min is None else cast(o.min),
                                   max_value=None if o.max is None else cast(o.max),
                                   step=1 if cast is int else None, format=None if cast is int else "%g",
                                   key=key, help=help_)
        return value, _words(o, o.problem(value))
    raw = where.text_input(o.label, key=key, help=help_).strip()
    if not raw:
        return (None, None) if o.optional else (o.convert(""), None)
    try:
        value = o.convert(raw)
    except ValueError:
        return o.default, f"{o.label}: {raw!r} is not {'an integer' if o.type is int else 'a number'}"
    return value, _words(o, o.problem(value))


def _words(o: OptionInfo, problem: str | None) -> str | None:
    """A problem message for the page: the option's label without its command-line flag."""
    return None if problem is None else problem.replace(f" ({o.flag})", "")


def options_form(cls: type, key_prefix: str, columns: int = 1, advanced: str | None = None) -> tuple[Any, list[str]]:
    """Widgets for the fields of the options dataclass ``cls`` (from ``dataclasses.fields()`` metadata via
    :func:`medviz.options.describe`), ``columns`` per row; fields marked ``advanced`` go into a popover
    titled ``advanced`` when given. Returns the ``cls`` instance and the problems of invalid entries."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    infos = describe(cls)
    main = [o for o in infos if not (advanced and o.advanced)]
    extra = [o for o in infos if advanced and o.advanced]

    def draw(options: list[OptionInfo], container: Any, n: int) -> None:
        for row in range(0, len(options), n):
            cells = container.columns(n) if n > 1 else [container] * n
            for o, cell in zip(options[row:row + n], cells):
                values[o.name], problem = _option_widget(o, f"{key_prefix}.{o.name}", cell)
                if problem:
                    problems.append(problem)

    draw(main, st, columns)
    if extra:
        with st.popover(advanced):
            draw(extra, st, 1)
    return cls(**values), problems


def apply_quick_demo(task: str) -> None:
    """``on_click`` of the quick demo button: put the preset's values (:func:`medviz.train.presets.quick_demo`)
    into the widgets of the common and the task options (before they are drawn again)."""
    preset = quick_demo(task)
    for cls, prefix, values in ((TrainConfig, "train", preset.config),
                                (get_task_class(task).Options, f"train.{task}", preset.options)):
        infos = {o.name: o for o in describe(cls)}
        for name, value in values.items():
            st.session_state[f"{prefix}.{name}"] = widget_value(infos[name], value)
    st.session_state[DEMO_KEY] = task


def quick_demo_button(task: str) -> None:
    """The one-click "Quick demo run" button; once pressed, says what the preset set (until the task changes)."""
    st.button("Quick demo run", key="train.demo", on_click=apply_quick_demo, args=(task,),
              help="fill the form with a small, fast configuration for this task (2 epochs on a small subset)")
    if st.session_state.get(DEMO_KEY) == task:
        st.info(quick_demo(task).description() + " Press Start training to run it.")


def task_options(task: str, manager: JobManager) -> tuple[Any, list[str]]:
    """Widgets for the task plugin's own options; returns its options dataclass and any problems (a path
    option such as "Start from weights" outside the runs, user models and shipped weights folders is one:
    :func:`medviz.train.paths.check_option_paths`)."""
    options, problems = options_form(get_task_class(task).Options, f"train.{task}")
    try:
        options = check_option_paths(options, manager.runs_dir)
    except DataSourceError as e:
        problems.append(str(e))
    return options, problems


def common_options() -> tuple[TrainConfig, list[str]]:
    """Widgets for the engine's hyperparameters (:class:`~medviz.train.engine.TrainConfig`); returns the
    config and any problems."""
    return options_form(TrainConfig, "train", columns=4, advanced="Advanced training options")


def estimate_text(est: dict[str, Any]) -> str:
    """Words for :func:`medviz.train.estimate.estimate`: memory, time per epoch (training steps plus
    validation), and "rough" with the reason when the measurement cannot be trusted to a factor 1.5."""
    kind = "Rough estimate" if est.get("rough") else "Estimate"
    return (f"{kind}: {est['params'] / 1e6:.2f} M parameters; ~{est['peak_mb']:.0f} MB; ~{est['step_s']:.2f} s/step × "
            f"{est['steps_per_epoch']} steps + ~{est.get('val_s', 0.0):.1f} s validation ≈ "
            f"{_duration(est['epoch_s'])} per epoch on {est['device']} ({est['method']}).")


# -- run view -------------------------------------------------------------------------------------------
def curves_figure(events: list[Any], max_step_points: int = MAX_STEP_POINTS) -> go.Figure:
    """Step loss and the parts a task streams with it (a GAN's ``generator_loss`` and ``discriminator_loss``,
    each its own curve), per-epoch train/val losses (left) and validation metrics (right) against epochs.

    The step loss is drawn at ``max_step_points`` steps at most (every k-th step and the last one): the
    live view redraws the figure every second, in the server and in the browser, and a long run has
    thousands of steps."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "validation metrics"))
    steps = [e for e in events if e.kind == "step"]
    if len(steps) > max_step_points:
        steps = steps[:: -(-len(steps) // max_step_points)] + steps[-1:]
    epochs = [e for e in events if e.kind == "epoch"]
    if steps:
        sx = [e.epoch + e.step / max(e.steps_per_epoch, 1) for e in steps]
        # the step loss, then each part the task streams (a GAN's generator and discriminator losses)
        for k in ["loss", *sorted({k for e in steps for k in e.metrics} - {"loss"})]:
            fig.add_trace(go.Scatter(x=sx, y=[e.metrics.get(k) for e in steps],
                                     name="step loss" if k == "loss" else f"step {k.replace('_', ' ')}",
                                     mode="lines", line={"width": 1}, opacity=0.5), row=1, col=1)
    x = [e.epoch + 1 for e in epochs]
    keys = sorted({k for e in epochs for k in e.metrics})
    for k in keys:
        y = [e.metrics.get(k) for e in epochs]
        col = 1 if "loss" in k else 2
        fig.add_trace(go.Scatter(x=x, y=y, name=k, mode="lines+markers"), row=1, col=col)
    fig.update_xaxes(title_text="epoch")
    fig.update_layout(height=340, margin={"t": 30, "b": 10, "l": 10, "r": 10})
    return fig


def show_summary(job: Job) -> None:
    """The data set summary and sample grid the task reported at start."""
    if job.queued:
        return
    start = next((e for e in job.events() if e.kind == "start"), None)
    if start is None:
        st.info("Preparing data…")
        return
    with st.expander("Data set summary", expanded=False):
        summary = start.metrics.get("summary", {})
        flat = {k: v for k, v in summary.items() if not isinstance(v, (dict, list))}
        if flat:
            st.dataframe([{"item": k, "value": str(v)} for k, v in flat.items()], hide_index=True)
        nested = {k: v for k, v in summary.items() if k not in flat}
        if nested:
            st.json(nested)
        samples = start.metrics.get("samples") or []
        if samples:
            caps = start.metrics.get("sample_captions") or None
            st.image([_to_uint8(s) for s in samples[:12]], caption=caps[:12] if caps else None, width=96)


def _to_uint8(a: Any) -> np.ndarray:
    a = np.asarray(a, dtype=np.float32)
    lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
    return ((a - lo) / max(hi - lo, 1e-8) * 255).astype(np.uint8)


def _phase(job: Job) -> str:
    """What the whole page shows for ``job``; the live view reruns the page when it changes (so "Preparing
    data…" gives way to the data summary as soon as the data are ready, not when the run ends)."""
    return "queued" if job.queued else "starting" if job.status == "starting" else "running" if job.running else "done"


def queue_note(manager: JobManager, job: Job, owner: str) -> str:
    """Words for a queued job's place in the queue and its rough wait ("" when it is not queued)."""
    place = manager.queue_place(job.id, owner)
    if place is None:
        return ""
    wait = ("a rough wait cannot be given until the running run has made progress" if place.eta_s is None
            else f"it should start in roughly {_duration(place.eta_s)} (a rough guess from the running run's "
                 "progress and the epochs left)")
    ahead = "it is next" if place.position == 1 else f"{place.position - 1} run(s) ahead of it"
    return f"Waiting in the training queue at position {place.position}: {ahead}; {wait}."


def _duration(seconds: float) -> str:
    return f"{seconds:.2g} s" if seconds < 10 else f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def curves_signature(events: list[Any]) -> tuple[int, int]:
    """What the curves of ``events`` depend on: the number of step and of epoch events."""
    return (sum(e.kind == "step" for e in events), sum(e.kind == "epoch" for e in events))


def live_curves(job: Job, events: list[Any]) -> go.Figure:
    """The curves figure of ``job``, rebuilt only when ``events`` hold new steps or epochs since this
    session last drew it (the same figure object otherwise, so nothing new is sent to the browser)."""
    sig = curves_signature(events)
    cached = st.session_state.get(CURVES_KEY)
    if cached is not None and cached[0] == job.id and cached[1] == sig:
        return cached[2]
    fig = curves_figure(events)
    st.session_state[CURVES_KEY] = (job.id, sig, fig)
    return fig


def live_view(manager: JobManager, job_id: str, owner: str) -> None:
    """Queue place, status, progress bar, ETA, throughput and memory (refreshed every
    ``STATUS_REFRESH_S`` while queued or running) and the loss curves (every ``CURVES_REFRESH_S``).

    The two refresh separately because the curves are what costs: a plotly figure built in the server and
    redrawn in the browser. Serving a slice to another user during a watched run was 1.7-1.8x slower with
    everything refreshed every second (README, load benchmark)."""
    job = manager.get(job_id, owner)

    seen = _phase(job)  # this full run's view; a fragment rerun that finds the phase changed refreshes the page
    live = seen != "done"

    @st.fragment(run_every=STATUS_REFRESH_S if live else None)
    def _status() -> None:
        if _phase(job) != seen:
            st.rerun()  # switch the whole page (Stop/Cancel, Resume, Evaluate, Promote)
        if job.queued:
            st.info(queue_note(manager, job, owner))
            return
        p = progress_numbers(job.events())
        st.progress(p.get("fraction", 0.0), text=f"{job.status} · epoch {p.get('epoch', 0)}/{p.get('epochs', job.cfg.epochs)}")
        c = st.columns(4)
        c[0].metric("status", job.status)
        eta = p.get("eta_s", float("nan"))
        c[1].metric("ETA", f"{eta:.0f} s" if job.running and np.isfinite(eta) else "–")
        c[2].metric("throughput", f"{p.get('throughput', 0):.1f} img/s")
        c[3].metric("memory", f"{p.get('memory_mb', 0):.0f} MB")
        if job.error:
            st.error(job.error)

    @st.fragment(run_every=CURVES_REFRESH_S if live else None)
    def _curves() -> None:
        if job.queued:
            return
        st.plotly_chart(live_curves(job, job.events()), key=f"curves-{job.id}")

    _status()
    _curves()


# -- report ---------------------------------------------------------------------------------------------
def show_report(report: dict[str, Any]) -> None:
    """Evaluation report: confusion matrix + ROC, Dice per case worst-first, or PSNR/SSIM."""
    if report.get("note"):
        st.info(report["note"])
    st.caption(f"best epoch {report['best_epoch']} by {report['monitor']} = {report['best_val']:.4f}; "
               f"split: {report['split']}")
    tables = report_tables(report)
    if tables["metrics"]:
        st.dataframe(tables["metrics"], hide_index=True)
    if "confusion" in report:
        c1, c2 = st.columns(2)
        cm = np.asarray(report["confusion"])
        fig = go.Figure(go.Heatmap(z=cm, x=report["classes"], y=report["classes"], text=cm, texttemplate="%{text}",
                                   colorscale="Blues", showscale=False))
        fig.update_layout(title="confusion matrix", xaxis_title="predicted", yaxis_title="true",
                          yaxis_autorange="reversed", height=360)
        c1.plotly_chart(fig, key="report-cm")
        roc = go.Figure()
        for name, r in report["roc"].items():
            roc.add_trace(go.Scatter(x=r["fpr"], y=r["tpr"], name=name, mode="lines"))
        roc.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot"}, showlegend=False))
        roc.update_layout(title="ROC", xaxis_title="1 - specificity", yaxis_title="sensitivity", height=360)
        c2.plotly_chart(roc, key="report-roc")
    if tables["per_case"]:
        st.dataframe(tables["per_case"], hide_index=True)


SIGNIFICANT = 4  # significant digits of the numbers in the evaluation tables


def _rounded(v: Any) -> float:
    """``v`` as a float rounded to :data:`SIGNIFICANT` significant digits (NaN when it is not a number)."""
    try:
        return float(f"{float(v):.{SIGNIFICANT}g}")
    except (TypeError, ValueError):
        return float("nan")


def _cell(v: Any) -> str:
    """One value of the metric table as text: numbers to :data:`SIGNIFICANT` significant digits."""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, float, np.integer, np.floating)):
        return f"{v:.{SIGNIFICANT}g}" if isinstance(v, (float, np.floating)) else str(v)
    return str(v)


def report_tables(report: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The evaluation report's tables, each column of one type (Arrow serialises them as they are):
    ``metrics`` (metric, value as text rounded to 4 significant digits, since the values mix numbers and
    words) and ``per_case`` (case as text, Dice as a float rounded to 4 significant digits)."""
    metrics = {**report.get("metrics", {}), **report.get("evaluator", {})}
    return {"metrics": [{"metric": str(k), "value": _cell(v)} for k, v in metrics.items()],
            "per_case": [{"case": str(c), "Dice": _rounded(d)} for c, d in report.get("per_case", [])]}


def data_source(manager: JobManager, owner: str) -> tuple[Path | None, str | None]:
    """The data source field and upload box; returns the data path for ``--data`` (None: the task's
    default data set) and what is wrong with the entry (None: nothing).

    A typed path must lie under the data folder (:func:`medviz.train.paths.check_data_source`); an
    upload (zip of class folders, or a MedMNIST-style ``.npz``) is saved readable by the server only,
    in this session's folder, removed when the session ends.
    """
    typed = st.text_input("data source (folder or file under the data folder; empty: the task's default data set)",
                          key="train.data",
                          help="Classification: MedMNIST .npz or a folder/zip of class folders; segmentation: "
                               "LGG folder (pairs.csv) or NIfTI images/ + labels/ (imagesTr/ + labelsTr/) pairs; "
                               "reconstruction: LGG folder (FLAIR channel). A relative path is read from the "
                               "data folder.")
    up = st.file_uploader("…or upload a data set (.zip of class folders, or .npz)", type=["zip", "npz"],
                          key="train.upload")
    if up is not None:
        return session_uploads(manager, owner).save(up.name, up.getvalue()), None
    if not typed.strip():
        return None, None
    try:
        return check_data_source(typed, [manager.upload_folder(owner)]), None
    except DataSourceError as e:
        return None, str(e)


def session_uploads(manager: JobManager, owner: str) -> SessionUploads:
    """This session's upload folder (kept in ``st.session_state``: removed when the session is dropped)."""
    store = st.session_state.get(UPLOADS_KEY)
    if store is None:
        store = st.session_state[UPLOADS_KEY] = SessionUploads(manager.upload_folder(owner))
    return store
