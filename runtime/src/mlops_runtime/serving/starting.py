"""SIGTERM or SIGINT while `serve` starts (resolving and loading the model) stops it at once.

Until uvicorn installs its own handlers, Python leaves SIGTERM at the system default, which the
first process of a container (PID 1) never receives: a stop sent while the model loaded was lost
and the server started anyway. Here a handler is installed first; it exits with 128 + the signal's
number until uvicorn takes over. Import nothing heavy: the supervisor installs it too.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class UntilServing:
    """A stop signal ends the process from now until `hand_over` (or the end of a `with` block).

    Signals can be caught in the main thread only; elsewhere nothing changes."""

    def __init__(self) -> None:
        self.serving = False
        self.previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            self.previous = {sig: signal.signal(sig, self._handle) for sig in SIGNALS}

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if not self.serving:
            os.write(2, f"serve: stopped by {signal.Signals(signum).name} before serving\n".encode())
            raise SystemExit(128 + signum)
        # uvicorn restores this handler when it stops and passes on the signal that stopped it:
        # give that signal its usual effect, as if this handler had never been installed.
        signal.signal(signum, self.previous[signum])
        signal.raise_signal(signum)

    def hand_over(self, app: Any) -> Callable[[], Any]:
        """An app factory for uvicorn (`factory=True`): it runs once uvicorn's handlers are in place."""

        def factory() -> Any:
            self.serving = True
            return app

        return factory

    def __enter__(self) -> UntilServing:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def block() -> None:
    """Hold stop signals across an exec: the program exec'd installs its handler, then calls `unblock`."""
    signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)


def unblock() -> None:
    """Deliver a stop signal held since `block` (to the handler now installed) and receive them again."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
