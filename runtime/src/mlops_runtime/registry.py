"""MLflow set-up: one place that decides where runs and models are recorded, and how long to wait for them."""

from __future__ import annotations

import functools
import json
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow

from .config import TIMEOUT_ENV, Params, server_timeout
from .errors import NotInRegistry, ParamsError, SubmitError
from .lineage import CHAMPION_ALIAS as CHAMPION_ALIAS  # promotion's alias per environment, read here too
from .lineage import COMMIT_TAG, LINEAGE, RUN_ID, TEMPLATE_VERSION, UNKNOWN

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


def model_dir(params: Params, reference: str) -> Path:
    """A model folder: a path as given, else version number or alias of the registered model."""
    if Path(reference).is_dir():
        return Path(reference)
    from mlflow.exceptions import MlflowException

    connect(params)
    name = params.registry.model_name
    uri = f"models:/{name}/{reference}" if reference.isdigit() else f"models:/{name}@{reference}"
    try:
        return download(uri)
    except MlflowException as exc:
        if unanswered := lost(exc):
            raise unanswered from None
        raise ParamsError(
            f"--reference {reference}: no such version or alias of {name} in the registry "
            f"({exc.message.splitlines()[0]})"
        ) from None


PLOTS = {"confusion matrix": "evaluation/confusion.csv", "ROC curve": "evaluation/roc.csv"}


POLL_SECONDS = 30


@dataclass(frozen=True)
class Version:
    """A registered model version and what its registration recorded."""

    model: str
    number: str
    run_id: str
    storage_uri: str
    tags: dict[str, str]
    evaluation: dict[str, float]

    def lineage(self, template_version: str) -> dict[str, str]:
        """Every lineage value of this version (lineage.LINEAGE), by its MLflow name."""
        recorded = {**self.tags, RUN_ID: self.run_id, TEMPLATE_VERSION: template_version}
        return {name: recorded.get(name, UNKNOWN) for name in LINEAGE}


@dataclass
class Registry:
    """The MLflow client and where it points, for messages."""

    client: Any
    uri: str

    def version(self, model: str, number: str, role: str = "") -> Version:
        """The registered version; NotInRegistry naming the model, version and registry when it is absent."""
        from mlflow.exceptions import MlflowException

        try:
            found = self.client.get_model_version(model, number)
            storage_uri = self.client.get_model_version_download_uri(model, number)
        except MlflowException as exc:
            if unanswered := lost(exc):
                raise unanswered from None
            what = f"{role} " if role else ""
            raise NotInRegistry(
                f"{what}{model} version {number} is not in the MLflow registry at {self.uri}: "
                "check the number (the register stage prints it), and MLFLOW_TRACKING_URI"
            ) from None
        tags = dict(found.tags or {})
        try:
            evaluation = json.loads(tags.get("evaluation", "{}"))
        except json.JSONDecodeError:
            evaluation = {}
        return Version(model, str(found.version), found.run_id or "", storage_uri, tags, evaluation)

    def version_for_commit(self, model: str, commit: str, wait: int) -> str:
        """The newest version registered from `commit`, polling up to `wait` seconds while training runs."""
        deadline = time.monotonic() + wait
        while True:
            found = [
                v
                for v in self.client.search_model_versions(f"name = '{model}'")
                if (v.tags or {}).get(COMMIT_TAG) == commit
            ]
            if found:
                return str(max(int(v.version) for v in found))
            if time.monotonic() >= deadline:
                raise NotInRegistry(
                    f"no version of {model} registered from commit {commit} in {self.uri} "
                    f"(waited {wait} s): its training run failed or missed the success criteria; see its workflow"
                )
            time.sleep(POLL_SECONDS)

    def plot_links(self, run_id: str) -> list[str]:
        """Where the evaluation plots of a run are: the MLflow UI for a server, artifact URIs otherwise."""
        links = [f"- {title}: `runs:/{run_id}/{path}`" for title, path in PLOTS.items()]
        if self.uri.startswith(("http://", "https://")):
            experiment = self.client.get_run(run_id).info.experiment_id
            page = f"{self.uri.rstrip('/')}/#/experiments/{experiment}/runs/{run_id}/artifacts"
            links.insert(0, f"- [run artifacts in MLflow]({page})")
        return links


def open_registry(params: Params) -> Registry:
    from mlflow import MlflowClient

    return Registry(MlflowClient(), connect(params))


@functools.lru_cache(maxsize=8)
def recorded_slices(run_id: str) -> list[dict[str, Any]] | None:
    """The slice report the evaluate stage logged with the run, or None when it has none."""
    import mlflow
    from mlflow.exceptions import MlflowException

    # A progress bar per small JSON file would bury the command's own message.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    with tempfile.TemporaryDirectory() as folder:
        try:
            local = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path="evaluation/slices.json", dst_path=folder
            )
            rows = json.loads(Path(local).read_text(encoding="utf-8"))
        except (MlflowException, OSError, json.JSONDecodeError):
            return None
    return [_renamed_label_rate(row) for row in rows] if isinstance(rows, list) else None


def _renamed_label_rate(row: Any) -> Any:
    """A slice row written before label_rate existed, when positive_rate meant the actual share of positives.

    positive_rate now means the share predicted positive: renamed, no fairness bound reads one as the other.
    """
    if not isinstance(row, dict) or "label_rate" in row:
        return row
    old = dict(row)
    old["label_rate"] = old.pop("positive_rate", None)
    return old


def alias_version(params: Params, alias: str) -> Any | None:
    """The version of the project's model behind `alias`, None when no version has it."""
    from mlflow.exceptions import MlflowException

    connect(params)
    try:
        return mlflow.MlflowClient().get_model_version_by_alias(params.registry.model_name, alias)
    except MlflowException as exc:
        if unanswered := lost(exc):
            raise unanswered from None
        return None


def register_run(params: Params, model_uri: str, run_id: str, tags: dict[str, str]) -> tuple[str, bool]:
    """Register the run's model (once: a rerun finds its version) and alias it; (version, already registered)."""
    from mlflow.exceptions import MlflowException

    configure(params)
    client = mlflow.MlflowClient()
    name = params.registry.model_name
    try:
        found = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    except MlflowException as exc:
        if unanswered := lost(exc):
            raise unanswered from None
        found = []
    reused = bool(found)
    version = max(found, key=lambda v: int(v.version)) if found else mlflow.register_model(model_uri, name, tags=tags)
    client.set_registered_model_alias(name, params.registry.alias, version.version)
    return str(version.version), reused


def download(uri: str) -> Path:
    """A local folder with the model (and what travels with it) at an MLflow URI."""
    return Path(mlflow.artifacts.download_artifacts(uri))
