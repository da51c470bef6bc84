"""Run training below the priority of serving (Linux: a per-thread nice value).

Training runs in a child process (:mod:`medviz.train.process`); a child inherits the nice value of
the thread that starts it, so the child is started from a thread lowered by
:func:`lower_thread_priority` and every thread of it runs lowered from its first instruction (the
child also checks with :func:`lower_process_priority`, which is the only way off Linux).

On Linux every thread has its own nice value, so :func:`lower_thread_priority` called first thing in
a training thread slows only that thread when the CPU is contended; the page's script threads keep
their priority. Threads created by a thread inherit its nice value at creation. Measured with torch
2.15 (OpenMP backend, libgomp): the intra-op worker threads a thread's first parallel torch call
creates belong to that thread and are created from it, so they get the training thread's nice value
(10) while the workers the main thread created earlier stay at 0; MONAI's ``ThreadDataLoader``
thread, started from the training thread, inherits it too. This only holds when the priority is
lowered *before* the thread's first torch call, which is why it is the first thing the thread does.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

log = logging.getLogger(__name__)
TRAINING_NICE = 10  # added to the server's (main thread's) nice value; 19 is the lowest priority


def thread_nice(native_id: int | None = None) -> int | None:
    """The nice value of a thread (default: the calling one); None where threads have none (not Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    return os.getpriority(os.PRIO_PROCESS, native_id or threading.get_native_id())


def nice_target(increment: int = TRAINING_NICE) -> int:
    """The nice value of training work: the server's (its main thread's) plus ``increment``, capped at 19."""
    return min(os.getpriority(os.PRIO_PROCESS, os.getpid()) + max(increment, 0), 19)


def lower_process_priority(target: int | None) -> int | None:
    """Lower the calling process (on Linux: its calling thread, which in a fresh child is all there is
    besides threads that inherited the nice value they were created with) to the nice value ``target``;
    never raises the priority. Returns the nice value afterwards (None: ``target`` is None)."""
    if target is None:
        return None
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if target <= current:
        return current
    try:
        os.setpriority(os.PRIO_PROCESS, 0, min(target, 19))
    except OSError as e:
        log.warning("could not lower the training process's priority: %s", e)
        return current
    return min(target, 19)


def lower_thread_priority(increment: int = TRAINING_NICE) -> int | None:
    """Set the calling thread's nice value to the server's (its main thread's) plus ``increment``,
    capped at 19; returns the thread's nice value.

    The target is relative to the main thread, not to the calling thread, because a training thread
    may be started by another one that already runs lowered (the queue starts the next job from the
    thread of the job that ended). Does nothing (returns None) off Linux, where ``PRIO_PROCESS`` with
    a thread id would name a process; never raises the priority (that needs privileges).
    """
    current = thread_nice()
    if current is None:
        return None
    target = nice_target(increment)
    if target <= current:
        return current
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), target)
    except OSError as e:  # e.g. a sandbox forbids it: training still runs, at normal priority
        log.warning("could not lower the training thread's priority: %s", e)
        return current
    return target
