"""MLflow set-up: one place that decides where runs and models are recorded, and how long to wait for them."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import mlflow

from .config import TIMEOUT_ENV, Params, server_timeout
from .errors import SubmitError

# The server of the last `connect`, for the message when it stops answering mid-command.
_connected: dict[str, object] = {}


def tracking_uri(params: Params) -> str:
    """MLFLOW_TRACKING_URI if set, else params.yaml; a relative SQLite file sits in the project root."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or params.mlflow.tracking_uri
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not Path(uri[len(prefix) :]).is_absolute():
        uri = prefix + str(params.root / uri[len(prefix) :])
    return uri


# Asked before anything else: every MLflow server answers it (200, or 401/403 behind authentication).
PROBE = "/api/2.0/mlflow/registered-models/search?max_results=1"


def unreachable_message(uri: str, seconds: int, why: str) -> str:
    """One line: which server did not answer, and how to fix it."""
    return (
        f"cannot reach the MLflow server at {uri} ({why}): start it, or set MLFLOW_TRACKING_URI "
        f"(else mlflow.tracking_uri in params.yaml) to one that answers; servers.timeout_seconds in "
        f"params.yaml (or {TIMEOUT_ENV}) sets the wait, now {seconds} s"
    )


def _reason(exc: BaseException | None, seconds: int) -> str:
    """A few words for why a request failed: refused, unknown host, no answer."""
    text = str(exc or "")
    for marker, words in (
        ("Connection refused", "connection refused"),
        ("Name or service not known", "unknown host"),
        ("nodename nor servname", "unknown host"),
        ("Temporary failure in name resolution", "unknown host"),
        ("No route to host", "no route to host"),
        ("Network is unreachable", "network unreachable"),
    ):
        if marker in text:
            return words
    return f"no answer within {seconds} s"


def probe(uri: str, seconds: int) -> None:
    """SubmitError unless an MLflow server at `uri` answers within `seconds`.

    The request runs in a thread that is given up after `seconds`, so that name resolution and TLS
    handshakes are bounded too (requests' own timeout bounds only each connect and each read).
    A 404 means something else answers there; 502, 503 and 504 a proxy whose MLflow is down.
    """
    import requests

    outcome: dict[str, str | None] = {}

    def ask() -> None:
        try:
            status = requests.get(uri.rstrip("/") + PROBE, timeout=seconds, allow_redirects=False).status_code
        except requests.exceptions.SSLError:
            status = 0  # it answered; MLflow's own TLS settings decide the rest
        except requests.exceptions.RequestException as exc:
            outcome["why"] = _reason(exc, seconds)
            return
        if status == 404:
            outcome["why"] = "it answers 404 to the MLflow API: another server, or a URL without its path prefix"
        elif status in (502, 503, 504):
            outcome["why"] = f"it answers {status}: a proxy in front of a server that is down"
        else:
            outcome["why"] = None

    thread = threading.Thread(target=ask, name="mlflow-probe", daemon=True)
    thread.start()
    thread.join(seconds)
    why = outcome.get("why", f"no answer within {seconds} s")
    if why is not None:
        raise SubmitError(unreachable_message(uri, seconds, why))


def unreachable(exc: BaseException) -> bool:
    """Whether an error (an MlflowException, say) was caused by a server that did not answer."""
    import requests

    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None or isinstance(seen, requests.exceptions.SSLError):
            return False
        if isinstance(seen, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def lost(exc: BaseException) -> SubmitError | None:
    """SubmitError naming the server when `exc` means it stopped answering; None for any other error."""
    if "uri" not in _connected or not unreachable(exc):
        return None
    seconds = int(_connected["seconds"])  # type: ignore[call-overload]
    return SubmitError(unreachable_message(str(_connected["uri"]), seconds, _reason(exc, seconds)))


def connect(params: Params) -> str:
    """Point MLflow at the tracking store and registry with bounded waits; return the URI.

    A tracking server must answer within servers.timeout_seconds (SubmitError, exit 5, otherwise),
    and every later request to it waits at most as long. MLflow's own retries are off unless
    MLFLOW_HTTP_REQUEST_MAX_RETRIES is set, so that one bound is one wait (Argo retries cluster steps).
    """
    # Models carry their own pinned requirements (train.serving_requirements), not
    # the project's uv.lock, which holds the whole development environment.
    os.environ.setdefault("MLFLOW_LOG_UV_FILES", "false")
    uri = tracking_uri(params)
    seconds = server_timeout(params)
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(seconds)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    if uri.startswith(("http://", "https://")):
        probe(uri, seconds)
    _connected.update(uri=uri, seconds=seconds)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def configure(params: Params) -> str:
    """`connect`, then select the project's experiment (created beside a SQLite store); return the URI."""
    uri = connect(params)
    name = params.mlflow.experiment
    if uri.startswith("sqlite:") and mlflow.get_experiment_by_name(name) is None:
        # Keep artifacts beside the database instead of wherever the process started.
        mlflow.create_experiment(name, artifact_location=(params.root / "mlartifacts").as_uri())
    mlflow.set_experiment(name)
    return uri
