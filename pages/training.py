"""Training page: start a run in the background, watch it learn, stop/resume, evaluate, promote."""

from __future__ import annotations

import streamlit as st

from medviz.evaluate import evaluation_report
from medviz.train.command import RunOptions, TrainCommand, command_line
from medviz.train.estimate import estimate
from medviz.train.jobs import JobError
from medviz.train.registry import available_tasks
from medviz.types import MedvizError
from medviz.ui import training as ui

st.title("Training")
manager, owner = ui.get_manager(), ui.owner_token()

tasks = available_tasks()
if not tasks:
    st.warning("No training task plugins are installed.")
    st.stop()
with st.expander("New run", expanded=not manager.jobs(owner)):
    task = st.selectbox("task", tasks, key="train.task")
    ui.quick_demo_button(task)
    data, data_problem = ui.data_source(manager, owner)
    config, problems = ui.common_options()
    with st.popover(f"{task} options"):
        options, task_problems = ui.task_options(task, manager)
    problems += task_problems + ([data_problem] if data_problem else [])
    command = TrainCommand(task, run=RunOptions(data=data), config=config, options=options)
    st.code(command_line(manager.shown_argv(owner, command)), language="bash")
    for problem in problems:
        st.error(problem)
    c1, c2 = st.columns(2)
    if c1.button("Estimate memory and time per epoch", key="train.estimate", disabled=bool(problems)):
        try:
            with st.spinner("Measuring a few training steps and part of the validation…"):
                st.session_state["train.est"] = estimate(command.build_task(), command.config)
        except (MedvizError, ValueError, RuntimeError) as e:
            st.error(f"Estimate failed: {e}")
    if est := st.session_state.get("train.est"):
        st.info(ui.estimate_text(est))
    if c2.button("Start training", type="primary", key="train.start", disabled=bool(problems)):
        try:
            st.session_state[ui.JOB_KEY] = manager.start(owner, command).id
        except (JobError, MedvizError, ValueError) as e:
            st.error(str(e))

with st.expander("Join a shared run"):
    code = st.text_input("share code", key="train.code")
    if st.button("Join", key="train.join") and code:
        try:
            st.session_state[ui.JOB_KEY] = manager.join(code, owner).id
        except JobError as e:
            st.error(str(e))

jobs = manager.jobs(owner)
if not jobs:
    st.caption("No runs in this session yet.")
    st.stop()
ids = [j.id for j in jobs]
current = st.session_state.get(ui.JOB_KEY)
job_id = st.selectbox("run", ids, index=ids.index(current) if current in ids else 0, key="train.pick",
                      format_func=lambda i: f"{i} · {manager.get(i, owner).task_name}")
job = manager.get(job_id, owner)
st.caption("python -m medviz.train " + " ".join(job.argv))
ui.show_summary(job)
ui.live_view(manager, job.id, owner)

b1, b2, b3 = st.columns(3)
if job.queued:
    if b1.button("Cancel (leave the queue)", key="train.cancel"):
        try:
            manager.cancel(job.id, owner)
            st.rerun()
        except JobError as e:
            st.error(str(e))
elif b1.button("Stop", disabled=not job.running, key="train.stop"):
    manager.stop(job.id, owner)
    st.toast("Stopping after the current step…")
if b2.button("Resume", disabled=job.active or job.status == "completed" or job.owner != owner, key="train.resume"):
    try:
        manager.resume(job.id, owner)
        st.rerun()
    except JobError as e:
        st.error(str(e))
if job.owner == owner and b3.button("Share", key="train.share"):
    st.code(manager.share(job.id, owner))

if not job.running and job.result is not None and job.result.best_epoch > 0:
    st.subheader("Evaluation")
    if st.button("Evaluate the best epoch on the validation split", key="train.eval"):
        with st.spinner("Evaluating…"):
            st.session_state[ui.REPORT_KEY] = (job.id, evaluation_report(job.task, job.result, job.run_dir))
    saved = st.session_state.get(ui.REPORT_KEY)
    if saved and saved[0] == job.id:
        ui.show_report(saved[1])
    if job.owner == owner:
        st.subheader("Promote to the model registry")
        name = st.text_input("model name", value=f"{job.task_name}-{job.id}", key="train.name")
        if st.button("Promote", key="train.promote"):
            try:
                promoted = manager.promote(job.id, owner, name)
                st.success(f"Registered {promoted.label} ({promoted.task}) in the user models folder; it now appears "
                           "on the model pages, marked user-trained.")
            except (JobError, MedvizError, NotImplementedError) as e:
                st.error(str(e))
        if job.promoted:
            promoted = job.promoted
            card = promoted.card_path
            if card is not None and card.is_file():
                with st.expander(f"Model card of {promoted.name}"):
                    st.markdown(card.read_text())
