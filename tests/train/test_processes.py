"""The command line in real processes: SIGKILL mid-epoch then ``--resume`` (FA-01/FA-03), and a
2-process gloo DDP run under ``torchrun`` equal to a single-process run with the same global batch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from medviz.train.checkpoint import LAST, load_checkpoint
from tests.train.conftest import ROOT, toy_env, train_cmd

COMMON = ["--epochs", "3", "--batch-size", "8", "--lr", "0.01", "--name", "toy"]


def _run(args, timeout=240, **kw):
    return subprocess.run(args, cwd=ROOT, env=toy_env(), capture_output=True, text=True, timeout=timeout, **kw)


def _weights(run_dir):
    return load_checkpoint(run_dir / LAST)["model"]


def _assert_close(a, b, atol=0.0):
    assert a.keys() == b.keys()
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst <= atol, f"largest weight difference {worst}"


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted single-process run (the run folder)."""
    run_dir = tmp_path_factory.mktemp("ref")
    ref = _run(train_cmd(*COMMON, "--run-dir", str(run_dir)))
    assert ref.returncode == 0, ref.stderr
    return run_dir


def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(tmp_path, reference):
    run_dir, trace = tmp_path / "run", tmp_path / "trace.txt"
    proc = subprocess.Popen(train_cmd(*COMMON, "--run-dir", str(run_dir), "--step-delay", "0.1", "--trace", str(trace)),
                            cwd=ROOT, env=toy_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 180
        # 8 steps per epoch: wait for step 4 of epoch 2, after epoch 1's checkpoint was written.
        while not (trace.exists() and len(trace.read_text().split()) >= 12):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "training never reached epoch 2"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert load_checkpoint(run_dir / LAST)["epoch"] == 1  # the last good checkpoint loads
    assert sorted(p.name for p in run_dir.iterdir()) == ["best.safetensors", "last.pt"]  # nothing partial

    resumed = _run(train_cmd(*COMMON, "--run-dir", str(run_dir), "--resume"))
    assert resumed.returncode == 0, resumed.stderr
    assert load_checkpoint(run_dir / LAST)["epoch"] == 3
    _assert_close(_weights(run_dir), _weights(reference))  # bitwise equal


def test_torchrun_two_gloo_processes_match_single_process(tmp_path, reference):
    ddp = _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                "-m", "medviz.train", *train_cmd(*COMMON, "--run-dir", str(tmp_path / "two"))[3:]])
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    ckpt = load_checkpoint(tmp_path / "two" / LAST)
    assert ckpt["epoch"] == 3 and len(ckpt["history"]) == 3  # rank 0 alone wrote it
    _assert_close(_weights(tmp_path / "two"), _weights(reference), atol=1e-5)
