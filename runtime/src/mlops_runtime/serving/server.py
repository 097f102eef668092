"""Model server: the open inference protocol (V2) over HTTP for the MLflow model, with Prometheus metrics.

The same server runs on a laptop (`make serve`), in the `deployment` runtime and
as the KServe ServingRuntime, so what is measured here is what the cluster serves.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import card
from ..config import Params
from ..errors import DataError, ParamsError
from ..monitoring.input_log import InputLog, schema_for
from ..monitoring.reference import OutlierDetector, load_reference
from .body import header_length, read_body
from .cpus import available_cpus
from .drain import Drain
from .fast_path import FastModel
from .fast_path_check import fast_paths
from .hooks import SETTING as HOOK_SETTING
from .hooks import ServingHook, load_serving_hook
from .metrics import make_metrics
from .model import ServedModel, resolve_model
from .observer import DROP_REASONS, Observer
from .protocol import (
    BINARY_HEADER,
    BYTES_PER_VALUE,
    DEFAULT_TEXT_LIMITS,
    OUTPUT_NAME,
    BadRequest,
    InferRequest,
    InputColumn,
    TextLimits,
    binary_output,
    input_columns,
    output_datatype,
    parse_request,
)
from .starting import UntilServing, block

log = logging.getLogger(__name__)

# Not an HTTP status a client ever sees: the count of requests whose client went away before the answer.
CLIENT_CLOSED = 499


class Endpoints:
    """The V2 endpoints around one loaded pyfunc model, and what they count."""

    def __init__(
        self,
        model: Any,
        name: str,
        version: str,
        uri: str,
        columns: list[InputColumn],
        max_rows: int,
        detector: OutlierDetector | None = None,
        log_inputs: Path | None = None,
        log_window_minutes: int = 60,
        fast: FastModel | None = None,
        log_flush_seconds: float = 30.0,
        log_required: bool = False,
        text_limits: TextLimits = DEFAULT_TEXT_LIMITS,
        drain_seconds: float = 0,
        hook: ServingHook | None = None,
        model_card: dict[str, Any] | None = None,
    ) -> None:
        self.model, self.name, self.version, self.fast, self.hook = model, name, version, fast, hook
        self.model_card = model_card
        self.columns, self.max_rows, self.text_limits = columns, max_rows, text_limits
        self.drain = Drain(drain_seconds)
        self.metrics = make_metrics()
        self.metrics.info.labels(name, version, uri).set(1)
        for reason in DROP_REASONS:  # every reason shows, at 0, before it first happens
            self.metrics.dropped.labels(name, reason)
        schema = schema_for((c.name, c.numeric) for c in columns)
        self.log_required = log_required
        self.observer = Observer(
            detector,
            InputLog(log_inputs, schema, log_window_minutes) if log_inputs is not None else None,
            on_outliers=self.metrics.outliers.labels(name).inc,
            on_dropped=lambda rows, reason: self.metrics.dropped.labels(name, reason).inc(rows),
            log_seconds=log_flush_seconds,
        )
        # Refuse bodies far larger than max_rows rows could need before reading them into memory.
        self.max_body = max_rows * len(columns) * BYTES_PER_VALUE + 64 * 1024
        self.metadata = {
            "name": name,
            "versions": [version],
            "platform": "mlflow",
            # The project's serving hook, when there is one, is part of what answers.
            "parameters": {"predict_path": "fast" if fast else "pyfunc", **({HOOK_SETTING: hook.name} if hook else {})},
            "inputs": [{"name": c.name, "datatype": c.datatype, "shape": [-1]} for c in columns],
            "outputs": [{"name": OUTPUT_NAME, "datatype": "INT64", "shape": [-1]}],
            # An extension field of the V2 model metadata: the card of the version served (card.py), or null.
            "model_card": model_card,
        }

    def unknown_model(self, request: Request) -> JSONResponse | None:
        """404 unless the URL names the served model (and its version, when it names one)."""
        requested, wanted = request.path_params["model"], request.path_params.get("version", self.version)
        if requested == self.name and wanted == self.version:
            return None
        message = (
            f"model '{requested}' version '{wanted}' is not served here; "
            f"this server serves model '{self.name}', versions {self.metadata['versions']}"
        )
        return JSONResponse({"error": message}, 404)

    async def live(self, _: Request) -> Response:
        return JSONResponse({"live": True})

    async def ready(self, _: Request) -> Response:
        """Ready; with an input log that cannot be written, says why, and is unready (503) when
        serve.log_inputs_required asks for it. Draining after SIGTERM: unready, so routing moves elsewhere."""
        if self.drain.draining:
            return JSONResponse({"ready": False, "draining": True}, 503)
        problem = self.observer.log_problem
        if problem is None:
            return JSONResponse({"ready": True})
        return JSONResponse({"ready": not self.log_required, "input_log": problem}, 503 if self.log_required else 200)

    async def server_metadata(self, _: Request) -> Response:
        return JSONResponse({"name": "mlops-v2-server", "version": "1", "extensions": ["binary_tensor_data"]})

    async def model_metadata(self, request: Request) -> Response:
        return self.unknown_model(request) or JSONResponse(self.metadata)

    async def model_card_text(self, request: Request) -> Response:
        """The card as Markdown, for people (an extension path beside the metadata); 404 when there is none."""
        if refused := self.unknown_model(request):
            return refused
        if self.model_card is None:
            return JSONResponse({"error": f"model '{self.name}' version {self.version} has no model card"}, 404)
        text = card.markdown(self.model_card, version=self.version)
        return Response(text, media_type="text/markdown; charset=utf-8")

    async def model_ready(self, request: Request) -> Response:
        return self.unknown_model(request) or JSONResponse({"name": self.name, "ready": True})

    async def prometheus(self, _: Request) -> Response:
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def infer(self, request: Request) -> Response:
        started = time.perf_counter()
        response = self.unknown_model(request) or await self._predict(request)
        self.metrics.requests.labels(self.name, str(response.status_code)).inc()
        self.metrics.duration.labels(self.name).observe(time.perf_counter() - started)
        return response

    async def _predict(self, request: Request) -> Response:
        try:
            if request.headers.get("content-encoding", "identity") != "identity":
                raise BadRequest("compressed request bodies (Content-Encoding) are not supported: send it plain", 415)
            body = await read_body(request, self.max_body)
            parsed = parse_request(body, self.columns, self.max_rows, header_length(request), self.text_limits)
            parsed = self._before_predict(parsed)
            predictions = self._predictions(parsed)
            extra = self.hook.outputs(parsed.columns, predictions) if self.hook else {}
        except BadRequest as exc:
            # A body refused unread (too large, compressed) is not worth reading to its end: close the connection.
            unread = exc.status in (413, 415)
            return JSONResponse({"error": str(exc)}, exc.status, headers={"connection": "close"} if unread else None)
        except ClientDisconnect:
            # The client went away mid-request: nothing to answer, and not the server's fault.
            return Response(status_code=CLIENT_CLOSED)
        except Exception:
            # A model failure is the server's fault (5xx) and counts in the error ratio alert.
            log.exception("prediction failed")
            return JSONResponse({"error": "prediction failed; see the server log"}, 500)
        self.metrics.rows.labels(self.name).inc(len(predictions))
        # Outlier scoring and input logging happen on the monitoring thread, never before the answer.
        self.observer.offer(parsed.columns, len(predictions))
        return self._answer(parsed.id, predictions, parsed.binary_output, extra)

    def _before_predict(self, parsed: InferRequest) -> InferRequest:
        """The request as the project's hook leaves it; a ValueError of the hook refuses it (400)."""
        if self.hook is None:
            return parsed
        try:
            columns = self.hook.columns(parsed.columns, parsed.rows)
        except ValueError as exc:
            raise BadRequest(f"refused by {HOOK_SETTING} ({self.hook.name}): {exc}") from None
        return replace(parsed, columns=dict(columns), _frame=None)

    def _predictions(self, parsed: InferRequest) -> np.ndarray:
        if self.fast is not None:
            return self.fast.predict(parsed.columns)
        return np.asarray(self.model.predict(parsed.frame)).reshape(-1)

    def _answer(
        self, request_id: str | None, predictions: np.ndarray, binary: bool, extra: Mapping[str, np.ndarray]
    ) -> Response:
        values = {OUTPUT_NAME: predictions, **extra}
        outputs: list[dict[str, Any]] = []
        raw = b""
        for name, column in values.items():
            datatype = output_datatype(column)
            output: dict[str, Any] = {"name": name, "shape": [len(column)], "datatype": datatype}
            if binary:  # the binary data extension: each output's bytes follow the JSON header, in order
                data = binary_output(column, datatype)
                output["parameters"] = {"binary_data_size": len(data)}
                raw += data
            else:
                output["data"] = column.tolist()
            outputs.append(output)
        body = {
            "model_name": self.name,
            "model_version": self.version,
            "id": request_id or str(uuid.uuid4()),
            "outputs": outputs,
        }
        if not binary:
            return JSONResponse(body)
        header = json.dumps(body, separators=(",", ":")).encode()
        return Response(
            header + raw,
            media_type="application/octet-stream",
            headers={BINARY_HEADER: str(len(header))},
        )

    def routes(self) -> list[Route]:
        return [
            Route("/v2/health/live", self.live),
            Route("/v2/health/ready", self.ready),
            Route("/v2", self.server_metadata),
            Route("/v2/models/{model}", self.model_metadata),
            Route("/v2/models/{model}/ready", self.model_ready),
            Route("/v2/models/{model}/versions/{version}", self.model_metadata),
            Route("/v2/models/{model}/model_card", self.model_card_text),
            Route("/v2/models/{model}/versions/{version}/ready", self.model_ready),
            Route("/v2/models/{model}/infer", self.infer, methods=["POST"]),
            Route("/v2/models/{model}/versions/{version}/infer", self.infer, methods=["POST"]),
            Route("/metrics", self.prometheus),
        ]


def create_app(endpoints: Endpoints) -> Starlette:
    """The V2 endpoints (health, metadata, infer) and /metrics; stopping the app drains the monitoring thread.

    With the model's outlier detector, rows unlike the training data are counted; with
    `log_inputs`, every predicted row is logged to that folder (monitoring/input_log.py), the
    drift check's input. Both happen off the request path (serving/observer.py).
    """

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        endpoints.drain.install()
        yield
        endpoints.observer.close()

    app = Starlette(routes=endpoints.routes(), lifespan=lifespan)
    app.state.endpoints = endpoints
    return app


def build_app(params: Params, served: ServedModel, announce: bool = True) -> Starlette:
    """Load the model once, choose its predict path, and wrap it in the V2 app; say which path serves."""
    import mlflow

    from ..registry import download, lost

    try:
        # One download serves both the model and the outlier detector stored beside it.
        local = download(served.uri)
        model = mlflow.pyfunc.load_model(str(local))
    except (OSError, mlflow.exceptions.MlflowException) as exc:
        if unanswered := lost(exc):
            raise unanswered from None
        raise ParamsError(f"cannot load the model at {served.uri}: {exc}") from None
    columns = input_columns(model, params)
    detector = None
    try:
        _, detector = load_reference(local)
    except DataError:
        log.warning("%s has no outlier detector: outliers are not counted", served.uri)
    fast, detector, path = fast_paths(params, model, local, columns, detector)
    # The monitoring thread's batches hold the interpreter lock in pure Python steps; a shorter switch
    # interval than the default 5 ms bounds how long a request waits for it.
    sys.setswitchinterval(0.001)
    if announce:
        print(f"serve (worker {os.getpid()}): predicting with {path}", flush=True)
    log_inputs = params.root / params.serve.log_inputs if params.serve.log_inputs else None
    return create_app(
        Endpoints(
            model,
            served.name,
            served.version,
            served.uri,
            columns,
            params.serve.max_batch_rows,
            detector,
            log_inputs,
            params.serve.log_window_minutes,
            fast,
            params.serve.log_flush_seconds,
            params.serve.log_inputs_required,
            TextLimits.of(params),
            params.serve.drain_seconds,
            load_serving_hook(params.hooks.serving),
            served_card(local, served.uri),
        )
    )


def served_card(local: Path, uri: str) -> dict[str, Any] | None:
    """The model card the model's folder carries (the evaluate stage puts it there), or None."""
    path = local / card.JSON_FILE
    if not path.is_file():
        log.warning("%s has no model card: the metadata's model_card is null", uri)
        return None
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("the model card of %s cannot be read (%s): the metadata's model_card is null", uri, exc)
        return None
    if wrong := card.malformed(found):
        log.warning(
            "the model card of %s cannot be shown (%s): the metadata's model_card is null", uri, "; ".join(wrong)
        )
        return None
    return found


# What a worker process reads to build the same app as the others (uvicorn starts workers afresh).
PARAMS_FILE_ENV = "MODEL_SERVER_PARAMS"


def worker_app() -> Starlette:
    """One worker's app under `uvicorn --workers`: the model the parent resolved, passed in the environment."""
    from ..config import load_params

    served = ServedModel(os.environ["MODEL_URI"], os.environ["MODEL_NAME"], os.environ["MODEL_VERSION"])
    return build_app(load_params(Path(os.environ[PARAMS_FILE_ENV])), served)


def main(
    params: Params,
    params_file: Path,
    env: str | None,
    model_uri: str | None,
    model_name: str | None,
    host: str,
    port: int,
    workers: int | None = None,
    starting: UntilServing | None = None,
) -> str:
    """Serve until stopped; a stop signal before serving ends it at once (`starting`, else installed here)."""
    starting = starting or UntilServing()
    import uvicorn

    from . import supervisor

    served = resolve_model(params, env, model_uri or os.environ.get("MODEL_URI") or None, model_name)
    workers = workers or params.serve.workers or available_cpus()
    where = f"http://{host}:{port}/v2"
    print(f"serve: {served.name} version {served.version} ({served.uri}) on {where}, {workers} worker(s)", flush=True)
    if workers == 1:
        app = build_app(params, served)
        uvicorn.run(starting.hand_over(app), factory=True, host=host, port=port, **supervisor.UVICORN_OPTIONS)
        return f"stopped serving {served.name} version {served.version}"
    # Several processes, each loading the model the parent resolved and running its own monitoring
    # thread. The model is loaded and checked here first: one that cannot be served stops `serve` with
    # its message and exit code, where failing workers would be restarted forever. Then the parent
    # becomes serving/supervisor.py, and exec frees all that this process loaded.
    build_app(params, served, announce=False).state.endpoints.observer.close()
    os.environ.update(
        MODEL_URI=served.uri,
        MODEL_NAME=served.name,
        MODEL_VERSION=served.version,
        **{PARAMS_FILE_ENV: str(Path(params_file).resolve())},
    )
    sys.stderr.flush()
    block()  # a stop signal from here waits for the supervisor's handler
    os.execv(sys.executable, supervisor.command(host, port, workers))
