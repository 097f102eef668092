"""The app factory uvicorn imports in each worker of a several-worker server (supervisor.WORKER_APP).

It lives apart from the supervisor, which the server imports, so that the server is imported
here only: under a handler that ends the worker at a stop signal, since uvicorn's own handlers
only ask a server to stop once it has started.
"""

from __future__ import annotations

from typing import Any

from .starting import UntilServing


def app() -> Any:
    """One worker's app (serving.server.worker_app), imported and loaded under the stop handler."""
    with UntilServing():
        from .server import worker_app as build

        return build()
