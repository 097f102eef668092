"""A task's command as a process group of its own, which `pipeline run-local` stops when it is told to stop.

A task's command starts processes of its own (dvc runs the stage's command, which may start
more). Each command starts a new session, so they all share one process group. SIGTERM or
SIGINT to run-local is passed to that group; what still runs STOP_GRACE seconds later (or at a
second signal) is killed, as the kubelet stops a pod. Without this, a task outlived run-local
and went on writing to the tracking store.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
STOP_GRACE = 10.0  # seconds from SIGTERM to SIGKILL for a task's processes (a pod gets 30 by default)
POLL = 0.1  # seconds between looks at a running task and at the signals received


class Stopped(Exception):
    """run-local received SIGTERM or SIGINT."""

    def __init__(self, signum: int) -> None:
        self.signal = signal.Signals(signum).name
        super().__init__(self.signal)


class StopSignals:
    """SIGTERM and SIGINT recorded for the length of a `with` block; `check()` raises Stopped once one came.

    Signals can be caught in the main thread only; elsewhere they keep their usual effect."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self.previous: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self.previous = {sig: signal.signal(sig, self._record) for sig in STOP_SIGNALS}
        return self

    def _record(self, signum: int, _frame: FrameType | None) -> None:
        self.received.append(signum)

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]

    def check(self) -> None:
        if self.received:
            raise Stopped(self.received[0])


def _signal_group(group: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # the whole group has already ended
        os.killpg(group, signum)


def stop(process: subprocess.Popen[bytes], signals: StopSignals, grace: float | None = None) -> None:
    """SIGTERM to the process group, then SIGKILL to what is left after `grace` seconds or a second signal."""
    grace = STOP_GRACE if grace is None else grace
    heard = len(signals.received)
    _signal_group(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while process.poll() is None and time.monotonic() < deadline and len(signals.received) <= heard:
        time.sleep(POLL)
    # The command may have ended while processes it started still run: they go too.
    _signal_group(process.pid, signal.SIGKILL)
    process.wait()


def run_group(
    command: Sequence[str], cwd: Path, env: dict[str, str], stdout: IO[bytes], stderr: IO[bytes], signals: StopSignals
) -> int:
    """Run `command` as a new process group; its exit code, or Stopped (the group stopped) when a signal came."""
    signals.check()
    process = subprocess.Popen(list(command), cwd=cwd, env=env, stdout=stdout, stderr=stderr, start_new_session=True)
    while True:
        try:
            return process.wait(timeout=POLL)
        except subprocess.TimeoutExpired:
            pass
        if signals.received:
            stop(process, signals)
            raise Stopped(signals.received[0])
