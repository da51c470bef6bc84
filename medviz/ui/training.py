"""Training page widgets: options form, live run view, data summary, evaluation report, promotion.

The :class:`~medviz.train.jobs.JobManager` is one object per server (``st.cache_resource``); each
browser session gets a random owner token in ``st.session_state`` and sees only its own runs and
runs shared with it by code.
"""

from __future__ import annotations

import argparse
import secrets
from pathlib import Path
from typing import Any

import numpy as np
import pandas  # noqa: F401  (imported before any training thread: plotly imports it lazily, racing the thread)
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from medviz.config import get_settings
from medviz.train.cli import build_parser
from medviz.train.jobs import Job, JobManager

OWNER_KEY = "medviz.train.owner"
JOB_KEY = "medviz.train.job"
REPORT_KEY = "medviz.train.report"
SKIP_DESTS = {"help"}


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
def _task_actions(task: str) -> list[argparse.Action]:
    parser = build_parser(task)
    group = next((g for g in parser._action_groups if g.title == f"{task} options"), None)
    return [a for a in (group._group_actions if group else []) if a.dest not in SKIP_DESTS]


def _flag(action: argparse.Action) -> str:
    return max(action.option_strings, key=len)


def task_options(task: str) -> list[str]:
    """Widgets for the task plugin's own command-line options; returns the non-default ones as argv."""
    argv: list[str] = []
    for a in _task_actions(task):
        key, label, default = f"train.{task}.{a.dest}", _flag(a).lstrip("-"), a.default
        if isinstance(a, argparse._StoreTrueAction):
            if st.checkbox(label, value=bool(default), key=key, help=a.help) != bool(default):
                argv.append(_flag(a))
            continue
        if a.nargs not in (None, 1):
            text = " ".join(str(v) for v in (default or []))
            value = st.text_input(label, value=text, key=key, help=(a.help or "") + " (space-separated)")
            if value.split() != text.split():
                argv += [_flag(a), *value.split()]
            continue
        if a.choices:
            choices = list(a.choices)
            value = st.selectbox(label, choices, index=choices.index(default) if default in choices else 0,
                                 key=key, help=a.help)
        elif a.type in (int, float) and default is None:
            text = st.text_input(label, value="", key=key, help=a.help).strip()
            value = a.type(text) if text else None
        elif a.type is int:
            value = st.number_input(label, value=int(default or 0), step=1, key=key, help=a.help)
        elif a.type is float:
            value = st.number_input(label, value=float(default or 0.0), format="%g", key=key, help=a.help)
        else:
            value = st.text_input(label, value="" if default is None else str(default), key=key, help=a.help) or None
        if value != default and not (default is not None and str(value) == str(default)):
            if value is not None:
                argv += [_flag(a), str(value)]
    return argv


def common_options() -> list[str]:
    """Widgets for the engine's hyperparameters; returns argv."""
    c1, c2, c3, c4 = st.columns(4)
    epochs = c1.number_input("epochs", 1, 1000, 10, key="train.epochs")
    batch = c2.number_input("batch size", 1, 4096, 32, key="train.batch")
    lr = c3.number_input("learning rate", 1e-6, 1.0, 1e-3, format="%g", key="train.lr")
    patience = c4.number_input("early-stop patience (0: off)", 0, 100, 0, key="train.patience")
    c5, c6, c7, c8 = st.columns(4)
    steps = c5.number_input("max steps per epoch (0: all)", 0, 100000, 0, key="train.steps")
    seed = c6.number_input("seed", 0, 2**31 - 1, 0, key="train.seed")
    scheduler = c7.selectbox("LR schedule", ["cosine", "step", "none"], key="train.sched")
    device = c8.selectbox("device", ["auto", "cpu", "cuda"], key="train.device")
    argv = ["--epochs", str(epochs), "--batch-size", str(batch), "--lr", f"{lr:g}", "--patience", str(patience),
            "--seed", str(seed), "--scheduler", scheduler, "--device", device]
    return argv + (["--max-steps-per-epoch", str(steps)] if steps else [])


# -- run view -------------------------------------------------------------------------------------------
def curves_figure(events: list[Any]) -> go.Figure:
    """Step loss, per-epoch train/val loss (left) and validation metrics (right) against epochs."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "validation metrics"))
    steps = [e for e in events if e.kind == "step"]
    epochs = [e for e in events if e.kind == "epoch"]
    if steps:
        fig.add_trace(go.Scatter(x=[e.epoch + e.step / max(e.steps_per_epoch, 1) for e in steps],
                                 y=[e.metrics["loss"] for e in steps], name="step loss", mode="lines",
                                 line={"width": 1}, opacity=0.5), row=1, col=1)
    x = [e.epoch + 1 for e in epochs]
    keys = sorted({k for e in epochs for k in e.metrics})
    for k in keys:
        y = [e.metrics.get(k) for e in epochs]
        col = 1 if "loss" in k else 2
        fig.add_trace(go.Scatter(x=x, y=y, name=k, mode="lines+markers"), row=1, col=col)
    fig.update_xaxes(title_text="epoch")
    fig.update_layout(height=340, margin={"t": 30, "b": 10, "l": 10, "r": 10})
    return fig


def progress_numbers(events: list[Any]) -> dict[str, float]:
    """Fraction done, ETA (s), throughput (samples/s) and memory (MB) from the latest events."""
    start = next((e for e in reversed(events) if e.kind == "start"), None)
    last = next((e for e in reversed(events) if e.kind in ("step", "epoch")), None)
    if start is None or last is None:
        return {}
    spe = max(last.steps_per_epoch, 1)
    pos = last.epoch + (1.0 if last.kind == "epoch" else last.step / spe)
    done = pos - start.epoch
    eta = last.elapsed_s / done * (last.epochs - pos) if done > 0 else float("nan")
    return {"fraction": min(pos / max(last.epochs, 1), 1.0), "eta_s": eta, "throughput": last.throughput,
            "memory_mb": last.memory_mb, "epoch": last.epoch + 1, "epochs": last.epochs}


def show_summary(job: Job) -> None:
    """The data set summary and sample grid the task reported at start."""
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


def live_view(manager: JobManager, job_id: str, owner: str) -> None:
    """Status, progress bar, ETA, throughput, memory and curves; refreshed every second while running."""
    job = manager.get(job_id, owner)

    live = job.running  # this full run's view; a fragment rerun that finds the job done refreshes the page

    @st.fragment(run_every=1.0 if live else None)
    def _live() -> None:
        events = job.events()
        p = progress_numbers(events)
        st.progress(p.get("fraction", 0.0), text=f"{job.status} · epoch {p.get('epoch', 0)}/{p.get('epochs', job.cfg.epochs)}")
        c = st.columns(4)
        c[0].metric("status", job.status)
        eta = p.get("eta_s", float("nan"))
        c[1].metric("ETA", f"{eta:.0f} s" if job.running and np.isfinite(eta) else "–")
        c[2].metric("throughput", f"{p.get('throughput', 0):.1f} img/s")
        c[3].metric("memory", f"{p.get('memory_mb', 0):.0f} MB")
        st.plotly_chart(curves_figure(events), key=f"curves-{job.id}")
        if job.error:
            st.error(job.error)
        if live and not job.running:
            st.rerun()  # switch the whole page to the finished state (Resume, Evaluate, Promote)

    _live()


# -- report ---------------------------------------------------------------------------------------------
def show_report(report: dict[str, Any]) -> None:
    """Evaluation report: confusion matrix + ROC, Dice per case worst-first, or PSNR/SSIM."""
    if report.get("note"):
        st.info(report["note"])
    st.caption(f"best epoch {report['best_epoch']} by {report['monitor']} = {report['best_val']:.4f}; "
               f"split: {report['split']}")
    metrics = {**report.get("metrics", {}), **report.get("evaluator", {})}
    if metrics:
        st.dataframe([{"metric": k, "value": v} for k, v in metrics.items()], hide_index=True)
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
    if "per_case" in report:
        st.dataframe([{"case": c, "Dice": d} for c, d in report["per_case"]], hide_index=True)


def uploaded_data_source(owner: str) -> str | None:
    """An optional upload (zip of class folders, or a MedMNIST-style ``.npz``) saved on the server
    under the runs folder, private to this session; returns its path for ``--data``."""
    import hashlib
    import re

    up = st.file_uploader("…or upload a data set (.zip of class folders, or .npz)", type=["zip", "npz"],
                          key="train.upload")
    if up is None:
        return None
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", Path(up.name).name)[:100] or "upload.zip"
    folder = get_settings().runs_dir / "uploads" / hashlib.sha256(owner.encode()).hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / safe
    if not path.exists() or path.stat().st_size != up.size:
        path.write_bytes(up.getvalue())
    return str(path)
