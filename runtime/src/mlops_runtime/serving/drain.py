"""SIGTERM drains the server: readiness turns 503 at once, requests are answered for `serve.drain_seconds`,
then uvicorn stops gracefully (in-flight requests finish, the input log is flushed) and the process exits.

On a rolling update Kubernetes sends SIGTERM while Services, ingresses and load balancers still route new
connections to the pod for a few seconds (endpoint removal propagates asynchronously). A server that stopped
accepting at once would refuse them. Draining in the server itself, rather than a `preStop` sleep, works
the same wherever it runs: a pod, `docker stop`, or a supervisor. SIGINT (Ctrl-C) still stops at once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from types import FrameType
from typing import Any


class Drain:
    """The drain of one worker process: `install` it once uvicorn's signal handlers are in place."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.draining = False

    def install(self) -> None:
        """Put the drain in front of uvicorn's SIGTERM handler (main thread only, where signals arrive)."""
        if threading.current_thread() is not threading.main_thread():
            return
        stop = signal.getsignal(signal.SIGTERM)
        if not callable(stop):
            return
        loop = asyncio.get_running_loop()

        def handle(signum: int, frame: FrameType | None) -> None:
            if self.draining:  # a second SIGTERM (a supervisor passing on the first) changes nothing
                return
            self.draining = True
            os.write(2, f"serve (worker {os.getpid()}): SIGTERM: not ready, draining for {self.seconds:g} s\n".encode())
            loop.call_soon_threadsafe(loop.call_later, self.seconds, _stop, stop, signum, frame)

        signal.signal(signal.SIGTERM, handle)


def _stop(stop: Any, signum: int, frame: FrameType | None) -> None:
    stop(signum, frame)
