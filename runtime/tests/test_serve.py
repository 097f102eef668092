"""The V2 model server answers real predictions, refuses bad requests with a 4xx and keeps serving."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import httpx2
import mlflow
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import tritonclient.http as triton
from prometheus_client import generate_latest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler
from starlette.testclient import TestClient
from tritonclient.utils import InferenceServerException

from mlops_runtime.cli import EXIT_BAD_INPUT
from mlops_runtime.config import Params, load_params
from mlops_runtime.errors import ParamsError
from mlops_runtime.files import read_table
from mlops_runtime.monitoring.current import read_current
from mlops_runtime.monitoring.input_log import InputLog, logged_files, schema_for
from mlops_runtime.monitoring.reference import load_profile, load_reference
from mlops_runtime.sample_data import write_sample
from mlops_runtime.serving.fast_path import FastDetector, FastModel, frame_columns
from mlops_runtime.serving.fast_path_check import PROBABILITY_TOLERANCE, check_rows, compile_detector, compile_model
from mlops_runtime.serving.model import ServedModel, resolve_model
from mlops_runtime.serving.observer import Observer
from mlops_runtime.serving.protocol import encode_request, input_columns
from mlops_runtime.serving.server import Endpoints, build_app, create_app

from .conftest import PACKAGE, PROJECT_ROOT, edit_params, stage_modules

featurize, ingest, train, validate = stage_modules("featurize", "ingest", "train", "validate")
build_preprocessor, ESTIMATORS = featurize.build_preprocessor, train.ESTIMATORS

URL = "/v2/models/model/infer"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Params, object, object]:
    """Parameters, a model trained once for this module on sample data, and held-out rows."""
    workdir = tmp_path_factory.mktemp("serve")
    shutil.copy(PROJECT_ROOT / "params.yaml", workdir / "params.yaml")
    params = load_params(workdir / "params.yaml")
    write_sample(workdir / params.ingest.source, rows=2000, seed=5)
    search = {"method": "grid", "cv_folds": 2, "scoring": "roc_auc", "space": {"max_iter": [40], "max_depth": [3]}}
    edit_params(workdir, train={"search": search})
    params = load_params(workdir / "params.yaml")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{workdir / 'mlflow.db'}")
        for stage in (ingest, validate, featurize, train):
            stage.main(params)
    model = mlflow.pyfunc.load_model(str(params.path("model")))
    rows = read_table(params.path("test"), produced_by="featurize")[params.data.features]
    return params, model, rows


@pytest.fixture
def client_and_rows(trained: tuple) -> tuple[TestClient, object, object]:
    """A fresh server (its own metrics) around the trained model, the model, and held-out rows."""
    params, model, rows = trained
    app = create_app(Endpoints(model, "model", "7", "models/model", input_columns(model, params), max_rows=50))
    return TestClient(app), model, rows


def test_good_request_matches_in_process_predict(client_and_rows: tuple) -> None:
    """A V2 request gets the same labels as predict() in process, with model name and version."""
    client, model, rows = client_and_rows
    batch = rows.head(20).reset_index(drop=True)
    response = client.post(URL, json=encode_request(batch))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == "model" and body["model_version"] == "7"
    assert body["outputs"][0]["data"] == [int(v) for v in model.predict(batch)]
    assert client.post("/v2/models/model/versions/7/infer", json=encode_request(batch)).status_code == 200
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert [i["name"] for i in client.get("/v2/models/model").json()["inputs"]] == list(rows.columns)


@pytest.mark.parametrize(
    "path",
    [
        "/v2/health/live",
        "/v2/health/ready",
        "/v2",
        "/v2/models/model",
        "/v2/models/model/versions/7",
        "/v2/models/model/ready",
        "/v2/models/model/versions/7/ready",
    ],
)
def test_every_v2_path_answers(client_and_rows: tuple, path: str) -> None:
    """Each GET path of the open inference protocol answers 200; another version of the model is a 404."""
    client, _, _ = client_and_rows
    assert client.get(path).status_code == 200
    if "/versions/7" in path:
        wrong = client.get(path.replace("/versions/7", "/versions/8"))
        assert wrong.status_code == 404
        assert "not served here; this server serves model 'model', versions ['7']" in wrong.json()["error"]


def _with(body: dict, column: str, **changes: object) -> dict:
    body = json.loads(json.dumps(body))
    for item in body["inputs"]:
        if item["name"] == column:
            item.update(changes)
    return body


@pytest.mark.parametrize(
    ("case", "status", "message"),
    [
        ("empty", 400, "empty body"),
        ("not json", 400, "not valid JSON"),
        ("missing column", 400, "missing ['age']"),
        ("extra column", 400, "unknown ['zip_code']"),
        ("wrong type", 400, "'old' is not a number"),
        ("infinite number", 400, "is not a finite number"),
        ("number too large", 400, "is not a finite number"),
        ("deeply nested", 400, "not valid JSON"),
        ("huge body", 413, "bytes is over the limit"),
        ("wrong datatype", 400, "datatype 'FP64' is wrong"),
        ("null where not nullable", 400, "null is not allowed"),
        ("uneven rows", 400, "different numbers of rows"),
        ("oversized batch", 413, "over the limit of 50"),
        ("unknown model", 404, "is not served here"),
        ("unknown version", 404, "version '8' is not served here"),
        ("shape of null", 400, "input 'age': 'shape' must be a list of non-negative integers"),
        ("negative shape", 400, "input 'age': 'shape' must be a list of non-negative integers"),
        ("shape not matching data", 400, "input 'age': shape [5] does not match 3 values"),
        ("empty input object", 400, "inputs[0].name must be a string"),
        ("inputs not a list", 400, "needs a non-empty 'inputs' list"),
        ("datatype not a string", 400, "input 'age': 'datatype' must be a string"),
        ("unknown output", 400, "output 'proba' is not one of this model's outputs"),
        ("binary data too short", 400, "input 'age': binary_data_size 24 runs past the 8 bytes"),
        ("binary header past the body", 400, "Inference-Header-Content-Length 100000 is more than"),
        ("binary header of 5000 digits", 400, "Inference-Header-Content-Length 1000000000000000000 is more than"),
        ("text value too long", 413, "input 'region' row 1: a value of 1025 characters is over the limit of 1024"),
        ("compressed body", 415, "Content-Encoding"),
    ],
)
def test_bad_requests_get_4xx_and_the_server_keeps_serving(
    client_and_rows: tuple, case: str, status: int, message: str
) -> None:
    """Each bad request is refused with a 4xx naming the problem; the next good request succeeds."""
    client, _, rows = client_and_rows
    good = encode_request(rows.head(3).reset_index(drop=True))
    url, content, headers = URL, None, None
    body: dict | None = None
    if case == "empty":
        content = b""
    elif case == "not json":
        content = b'{"inputs": ['
    elif case == "missing column":
        body = {"inputs": [i for i in good["inputs"] if i["name"] != "age"]}
    elif case == "extra column":
        extra = {"name": "zip_code", "datatype": "BYTES", "shape": [3], "data": list("abc")}
        body = {"inputs": [*good["inputs"], extra]}
    elif case == "wrong type":
        body = _with(good, "age", data=["old", 30.0, 40.0])
    elif case == "infinite number":
        content = json.dumps(_with(good, "age", data=[float("inf"), 30.0, 40.0])).encode()
    elif case == "number too large":
        content = json.dumps(_with(good, "age", data=[10**400, 30.0, 40.0])).encode()
    elif case == "deeply nested":
        content = b"[" * 20_000 + b"]" * 20_000
    elif case == "huge body":
        content = b" " * (50 * 8 * 256 + 64 * 1024 + 1)
    elif case == "wrong datatype":
        body = _with(good, "contract", datatype="FP64")
    elif case == "null where not nullable":
        body = _with(good, "age", data=[None, 30.0, 40.0])
    elif case == "uneven rows":
        body = _with(good, "age", data=[20.0, 30.0], shape=[2])
    elif case == "oversized batch":
        body = encode_request(rows.head(51).reset_index(drop=True))
    elif case == "unknown model":
        url, body = "/v2/models/other/infer", good
    elif case == "unknown version":
        url, body = "/v2/models/model/versions/8/infer", good
    elif case == "shape of null":
        body = _with(good, "age", shape=[None])
    elif case == "negative shape":
        body = _with(good, "age", shape=[-1])
    elif case == "shape not matching data":
        body = _with(good, "age", shape=[5])
    elif case == "empty input object":
        body = {"inputs": [{}]}
    elif case == "inputs not a list":
        body = {"inputs": good["inputs"][0]}
    elif case == "datatype not a string":
        body = _with(good, "age", datatype=["FP64"])
    elif case == "unknown output":
        body = {**good, "outputs": [{"name": "proba"}]}
    elif case in ("binary data too short", "binary header past the body"):
        header = json.dumps(_with(good, "age", data=None, parameters={"binary_data_size": 24})).encode()
        content = header + np.array([20.0], dtype="<f8").tobytes()
        length = len(header) if case == "binary data too short" else 100_000
        headers = {"Inference-Header-Content-Length": str(length)}
    elif case == "binary header of 5000 digits":  # more than int() converts
        content, headers = json.dumps(good).encode(), {"Inference-Header-Content-Length": "9" * 5000}
    elif case == "text value too long":
        body = _with(good, "region", data=["north", "n" * 1025, "south"])
    elif case == "compressed body":
        content, headers = json.dumps(good).encode(), {"Content-Encoding": "gzip"}
    if body is not None:
        content = json.dumps(body).encode()
    response = client.post(url, content=content, headers=headers)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]
    assert client.post(URL, json=good).status_code == 200


def test_text_limits_come_from_params_and_name_the_input(trained: tuple) -> None:
    """serve.max_value_chars and serve.max_request_chars reach the server; a request over either gets 413 naming it."""
    params, _, rows = trained
    limits = params.serve.model_copy(update={"max_value_chars": 50, "max_request_chars": 2000})
    app = build_app(params.model_copy(update={"serve": limits}), ServedModel(str(params.path("model")), "model", "1"))
    batch = rows.head(30).reset_index(drop=True)
    with TestClient(app) as client:
        long_value = batch.assign(region=["r" * 51] + ["north"] * 29)
        refused = client.post(URL, json=encode_request(long_value))
        assert refused.status_code == 413
        assert refused.json()["error"].startswith("input 'region' row 0: a value of 51 characters is over the limit")
        long_request = batch.assign(region=["r" * 49] * 30)
        refused = client.post(URL, json=encode_request(long_request))
        assert refused.status_code == 413
        assert "in input 'region'), over the limit of 2000 (serve.max_request_chars)" in refused.json()["error"]
        assert client.post(URL, json=encode_request(batch.head(5))).status_code == 200


def test_a_long_text_value_costs_its_own_size_not_rows_times_it(trained: tuple) -> None:
    """The fast path makes no fixed-width text: 1,000 rows with one 100,000-character value take a few MB."""
    params, model, rows = trained
    (fast, said), _, numeric = _fast_path(params, model)
    assert fast is not None, said
    batch = pd.concat([rows] * 3, ignore_index=True).head(1000)
    batch.loc[7, "region"] = "x" * 100_000
    columns = frame_columns(batch, list(batch.columns), numeric)
    tracemalloc.start()  # numpy reports its allocations to tracemalloc
    try:
        fast.predict(columns)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # numpy's fixed-width text (astype(str)) would take 1,000 x 100,000 x 4 bytes = 400 MB here.
    assert peak < 20 * 2**20, f"peak {peak / 2**20:.0f} MiB"


def test_metrics_count_requests_by_status(client_and_rows: tuple) -> None:
    """/metrics exposes request counts by status code, latency and predicted rows for Prometheus."""
    client, _, rows = client_and_rows
    client.post(URL, json=encode_request(rows.head(4).reset_index(drop=True)))
    client.post(URL, content=b"")
    metrics = client.get("/metrics").text
    assert 'model_server_requests_total{code="200",model="model"} 1.0' in metrics
    assert 'model_server_requests_total{code="400",model="model"} 1.0' in metrics
    assert 'model_server_predicted_rows_total{model="model"} 4.0' in metrics
    assert "model_server_request_duration_seconds_bucket" in metrics
    assert 'model_server_model_info{model="model",uri="models/model",version="7"} 1.0' in metrics


def test_unpinned_environment_is_refused_with_the_fix(params: Params) -> None:
    """`serve --env dev` before a promotion says that nothing is pinned and what to do."""
    shutil.copytree(PROJECT_ROOT / "deploy", params.root / "deploy")
    with pytest.raises(ParamsError, match="no model is pinned for dev"):
        resolve_model(params, env="dev", model_uri=None)
    with pytest.raises(ParamsError, match="unknown environment 'qa'"):
        resolve_model(params, env="qa", model_uri=None)


def test_outlier_rows_are_counted(trained: tuple) -> None:
    """With the model's outlier detector, rows far outside the training data raise the outlier counter."""
    params, model, rows = trained
    _, detector = load_reference(params.path("model"))
    app = create_app(Endpoints(model, "model", "7", "models/model", input_columns(model, params), 50, detector))
    with TestClient(app) as client:
        normal = rows.head(20).reset_index(drop=True)
        extreme = normal.head(3).assign(age=400.0, monthly_charges=9000.0)
        assert client.post(URL, json=encode_request(normal)).status_code == 200
        assert client.post(URL, json=encode_request(extreme)).status_code == 200
    # Read after the app stopped: stopping drained the monitoring queue, so every row is scored.
    counted = [
        line
        for line in generate_latest(app.state.endpoints.metrics.registry).decode().splitlines()
        if line.startswith("model_server_outlier_rows_total")
    ]
    assert counted and 3 <= float(counted[0].split()[-1]) <= 4  # the 3 extreme rows, at most 1 normal one


def logging_app(trained: tuple, log: Path, **settings) -> object:
    params, model, _ = trained
    columns = input_columns(model, params)
    return create_app(Endpoints(model, "model", "7", "models/model", columns, 50, log_inputs=log, **settings))


def logged_rows(params: Params, log: Path) -> int:
    return sum(len(read_current(name, params.data)) for name in logged_files(str(log), hours=1))


def dropped(metrics: str) -> dict[str, float]:
    """model_server_monitoring_dropped_rows_total by reason, from a /metrics text."""
    prefix = "model_server_monitoring_dropped_rows_total{"
    found = {}
    for line in metrics.splitlines():
        if line.startswith(prefix):
            labels, value = line[len(prefix) :].split("} ")
            found[dict(item.split("=") for item in labels.split(","))["reason"].strip('"')] = float(value)
    return found


def test_logged_inputs_feed_the_drift_check(trained: tuple, tmp_path) -> None:
    """Every predicted row reaches the log folder, in whole Parquet files once the server stops cleanly."""
    params, _, rows = trained
    log = tmp_path / "inputs"
    with TestClient(logging_app(trained, log)) as client:
        for start in (0, 30):
            batch = rows.iloc[start : start + 30].reset_index(drop=True)
            assert client.post(URL, json=encode_request(batch)).status_code == 200
        assert dropped(client.get("/metrics").text) == {"queue_full": 0, "write_error": 0, "schema": 0}
    assert not list(log.glob("*.open"))
    logged = pd.concat([read_current(name, params.data) for name in logged_files(str(log), hours=1)])
    assert len(logged) == 60 and list(logged.columns) == params.data.features


def test_a_text_column_empty_in_the_first_batch_stays_text(trained: tuple, tmp_path) -> None:
    """A first request whose nullable text column is all empty does not type the log: every later row is logged."""
    params, _, rows = trained
    log = tmp_path / "inputs"
    first = rows.head(20).reset_index(drop=True).assign(payment_method=None)
    with TestClient(logging_app(trained, log, log_flush_seconds=0.2)) as client:
        assert client.post(URL, json=encode_request(first)).status_code == 200
        time.sleep(1.5)  # the first batch is written on its own
        later = rows.iloc[20:60].reset_index(drop=True)
        assert client.post(URL, json=encode_request(later)).status_code == 200
    assert logged_rows(params, log) == 60
    types = {str(pq.read_schema(name).field("payment_method").type) for name in logged_files(str(log), 1)}
    assert types == {"string"}


def test_rows_are_written_every_flush_interval(trained: tuple, tmp_path) -> None:
    """While the server runs, predicted rows are in whole files within log_flush_seconds: what a worker killed
    with -9 can lose is bounded by that interval, not by the window."""
    params, _, rows = trained
    log = tmp_path / "inputs"
    with TestClient(logging_app(trained, log, log_flush_seconds=0.5)) as client:
        assert client.post(URL, json=encode_request(rows.head(25).reset_index(drop=True))).status_code == 200
        deadline = time.monotonic() + 10
        while not logged_files(str(log), hours=1) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert logged_rows(params, log) == 25  # before the server stops


def test_a_moment_of_full_disk_loses_no_row(trained: tuple, tmp_path, monkeypatch) -> None:
    """A write that fails (no space left) is reported by readiness and retried: the rows reach the log once the
    disk has room, no broken file is left, and nothing is counted as dropped."""
    params, _, rows = trained
    log = tmp_path / "inputs"
    app = logging_app(trained, log, log_flush_seconds=0.3)
    real, failures = pq.write_table, []

    def full_disk(table, where, **options):
        if len(failures) >= 3:
            return real(table, where, **options)
        failures.append(where)
        Path(where).write_bytes(b"PAR1 cut short")  # what a write that ran out of space leaves
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pq, "write_table", full_disk)
    with TestClient(app) as client:
        assert client.post(URL, json=encode_request(rows.head(30).reset_index(drop=True))).status_code == 200
        deadline = time.monotonic() + 10
        while "input_log" not in client.get("/v2/health/ready").json() and time.monotonic() < deadline:
            time.sleep(0.05)
        ready = client.get("/v2/health/ready")
        assert ready.status_code == 200 and ready.json()["ready"] is True, ready.text
        assert "No space left on device" in ready.json()["input_log"]
        assert client.post(URL, json=encode_request(rows.iloc[30:50].reset_index(drop=True))).status_code == 200
        while len(failures) < 3 or "input_log" in client.get("/v2/health/ready").json():
            assert time.monotonic() < deadline + 10, "the log never recovered"
            time.sleep(0.05)
        assert client.get("/v2/health/ready").json() == {"ready": True}
        counts = dropped(client.get("/metrics").text)
    assert logged_rows(params, log) == 50 and counts["write_error"] == 0
    assert not list(log.glob("*.open"))


@pytest.mark.parametrize("required", [False, True])
def test_a_log_that_cannot_be_written_is_told(trained: tuple, tmp_path, required: bool) -> None:
    """A log folder that cannot be made: readiness says why from the start (and is 503 when
    serve.log_inputs_required), and every row it could not log is counted as dropped, reason write_error."""
    _, _, rows = trained
    (tmp_path / "taken").write_text("a file where the folder should be")
    app = logging_app(trained, tmp_path / "taken" / "inputs", log_flush_seconds=0.2, log_required=required)
    app.state.endpoints.observer.pending_rows = 10  # keep little while the log is down
    with TestClient(app) as client:
        ready = client.get("/v2/health/ready")
        assert ready.status_code == (503 if required else 200) and ready.json()["ready"] is not required
        assert "cannot write the input log in" in ready.json()["input_log"] and "taken" in ready.json()["input_log"]
        for start in range(0, 60, 20):
            assert client.post(URL, json=encode_request(rows.iloc[start : start + 20])).status_code == 200
        time.sleep(1)
        assert dropped(client.get("/metrics").text)["write_error"] >= 40
    assert dropped(generate_latest(app.state.endpoints.metrics.registry).decode())["write_error"] == 60


def test_rows_not_fitting_the_log_are_counted(tmp_path) -> None:
    """Rows that lack a column of the model's inputs are dropped from the log and counted, reason schema."""
    counted = []
    schema = schema_for([("age", True), ("region", False)])
    observer = Observer(None, InputLog(tmp_path, schema), lambda n: None, lambda n, why: counted.append((n, why)))
    observer.offer({"age": np.array([30.0, 40.0])}, 2)
    observer.close()
    assert counted == [(2, "schema")] and not list(tmp_path.glob("inputs-*"))


def test_empty_log_inputs_logs_nothing(trained: tuple, tmp_path: Path) -> None:
    """serve.log_inputs: "" (or only spaces) turns logging off; it never means the project folder."""
    params, _, _ = trained
    shutil.copy(params.root / "params.yaml", tmp_path / "params.yaml")
    for empty in ("", "  "):
        edit_params(tmp_path, serve={"log_inputs": empty})
        edited = load_params(tmp_path / "params.yaml")
        assert edited.serve.log_inputs is None
        app = build_app(edited, ServedModel(str(params.path("model")), "model", "7"), announce=False)
        assert app.state.endpoints.observer.input_log is None
        app.state.endpoints.observer.close()


class SlowDetector:
    """An outlier detector that takes a long time: scoring must not delay any answer."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.scored = seconds, 0

    def flags(self, frame):
        time.sleep(self.seconds)
        self.scored += len(frame)
        return np.zeros(len(frame), dtype=bool)


def test_monitoring_never_delays_an_answer(trained: tuple, tmp_path) -> None:
    """With a detector that sleeps 0.2 s per batch, answers take as long as without one; rows are all scored."""
    params, model, rows = trained
    row = encode_request(rows.head(1))

    def latencies(detector) -> list[float]:
        app = create_app(Endpoints(model, "model", "7", "models/model", input_columns(model, params), 50, detector))
        with TestClient(app) as client:
            for _ in range(5):
                client.post(URL, json=row)
            taken = []
            for _ in range(40):
                started = time.perf_counter()
                assert client.post(URL, json=row).status_code == 200
                taken.append(time.perf_counter() - started)
        return taken

    slow = SlowDetector(0.2)
    plain, monitored = statistics.median(latencies(None)), statistics.median(latencies(slow))
    # 0.2 s per batch on the request path would put the median above 0.2 s; off it, the median barely moves.
    assert monitored < plain + 0.05, (plain, monitored)
    assert slow.scored == 45  # stopping the app drained the queue: every answered row was scored


def test_a_full_monitoring_queue_drops_and_counts(trained: tuple) -> None:
    """When monitoring cannot keep up, rows are dropped and counted, and answers go on."""
    params, model, rows = trained
    app = create_app(
        Endpoints(model, "model", "7", "models/model", input_columns(model, params), 50, SlowDetector(0.5))
    )
    endpoints = app.state.endpoints
    endpoints.observer.queue.maxsize = 1
    with TestClient(app) as client:
        for _ in range(6):
            assert client.post(URL, json=encode_request(rows.head(2))).status_code == 200
        metrics = client.get("/metrics").text
    assert dropped(metrics)["queue_full"] >= 2


def _fast_path(params: Params, model) -> tuple:
    numeric = set(params.data.numeric)
    rows = check_rows(load_profile(params.path("model")), model.input_example)
    return compile_model(model, rows, numeric), rows, numeric


def test_fast_path_equals_pyfunc_on_the_held_out_set(trained: tuple) -> None:
    """The server's predict path gives pyfunc's classes exactly, the pipeline's probabilities within 1e-6."""
    params, model, rows = trained
    (fast, said), _, numeric = _fast_path(params, model)
    assert fast is not None, said
    assert "fast path" in said and "HistGradientBoostingClassifier" in said
    assert rows.isna().any().any()  # the held-out set has gaps the path must impute as the pipeline does
    columns = frame_columns(rows, list(rows.columns), numeric)
    assert np.array_equal(fast.predict(columns), np.asarray(model.predict(rows)))
    gap = np.abs(fast.predict_proba(columns) - model.get_raw_model().predict_proba(rows)).max()
    assert gap <= PROBABILITY_TOLERANCE
    # Through HTTP, the app on the fast path answers what pyfunc predicts.
    app = create_app(Endpoints(model, "model", "7", "models/model", input_columns(model, params), 1000, fast=fast))
    with TestClient(app) as client:
        response = client.post(URL, json=encode_request(rows))
        assert client.get("/v2/models/model").json()["parameters"] == {"predict_path": "fast"}
    assert response.json()["outputs"][0]["data"] == [int(v) for v in model.predict(rows)]


def _saved(pipeline: Pipeline, model, folder: Path):
    """A fitted pipeline saved as the train stage saves models (cloudpickle, the model's signature), loaded back."""
    signature = model.metadata.signature
    mlflow.sklearn.save_model(
        pipeline, folder, signature=signature, serialization_format="cloudpickle", pip_requirements=[]
    )
    return mlflow.pyfunc.load_model(str(folder))


@pytest.mark.parametrize("estimator", ["random_forest", "logistic_regression"])
def test_fast_path_covers_the_other_estimators(trained: tuple, tmp_path: Path, estimator: str) -> None:
    """The other estimators params.yaml offers take the fast path too, equal to pyfunc on the held-out set."""
    params, model, rows = trained
    train_rows = read_table(params.path("train"), produced_by="featurize")
    pipeline = Pipeline([("features", build_preprocessor(params.data)), ("model", ESTIMATORS[estimator]())])
    pipeline.fit(train_rows[params.data.features], train_rows[params.data.label])
    other = _saved(pipeline, model, tmp_path / "m")
    numeric = set(params.data.numeric)
    fast, said = compile_model(other, rows, numeric)
    assert fast is not None, said
    columns = frame_columns(rows, list(rows.columns), numeric)
    assert np.array_equal(fast.predict(columns), np.asarray(other.predict(rows)))
    assert np.abs(fast.predict_proba(columns) - pipeline.predict_proba(rows)).max() <= PROBABILITY_TOLERANCE


def test_a_model_off_the_fast_path_is_served_by_pyfunc_and_says_why(
    trained: tuple, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A preprocessing step the fast path does not replay keeps the server on pyfunc, said at start-up."""
    params, model, rows = trained
    train_rows = read_table(params.path("train"), produced_by="featurize")
    numbers = Pipeline([("impute", SimpleImputer()), ("scale", MinMaxScaler())])
    features = ColumnTransformer([("numeric", numbers, params.data.numeric)])
    pipeline = Pipeline([("features", features), ("model", ESTIMATORS["random_forest"](n_estimators=10))])
    pipeline.fit(train_rows[params.data.features], train_rows[params.data.label])
    _saved(pipeline, model, tmp_path / "m")
    app = build_app(params, ServedModel(str(tmp_path / "m"), "model", "1"))
    assert "predicting with pyfunc (the fast path does not replay preprocessing step MinMaxScaler)" in (
        capsys.readouterr().out
    )
    with TestClient(app) as client:
        response = client.post(URL, json=encode_request(rows.head(30)))
        assert client.get("/v2/models/model").json()["parameters"] == {"predict_path": "pyfunc"}
    assert response.json()["outputs"][0]["data"] == [int(v) for v in pipeline.predict(rows.head(30))]


def test_a_fast_path_that_disagrees_is_not_used(trained: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    """Probabilities off by more than the tolerance on the check rows keep the server on pyfunc."""
    params, model, _ = trained
    proba = FastModel.predict_proba
    monkeypatch.setattr(FastModel, "predict_proba", lambda self, columns: proba(self, columns) + 1e-4)
    (fast, said), _, _ = _fast_path(params, model)
    assert fast is None and "the fast path disagrees: probabilities differ by up to 1.00e-04" in said


def test_outlier_flags_on_the_fast_path_equal_the_detector(trained: tuple) -> None:
    """The monitoring thread's detector (Treelite) flags the same rows as the model's outlier detector."""
    params, model, rows = trained
    _, detector = load_reference(params.path("model"))
    (_, _), checks, numeric = _fast_path(params, model)
    fast, said = compile_detector(detector, checks, numeric)
    assert isinstance(fast, FastDetector), said
    extreme = rows.head(5).assign(age=400.0, monthly_charges=9000.0)
    frame = pd.concat([rows, extreme], ignore_index=True)
    expected = detector.flags(frame)
    assert expected.sum() >= 5 and np.array_equal(fast.flags(frame), expected)


def test_several_workers_count_and_log_every_request(trained: tuple, tmp_path: Path) -> None:
    """With two workers, /metrics sums both, and a clean stop leaves every answered row in the log."""
    params, model, rows = trained
    shutil.copy(params.root / "params.yaml", tmp_path / "params.yaml")
    edit_params(tmp_path, serve={"log_inputs": str(tmp_path / "inputs")})
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", PACKAGE, "serve", "--params", str(tmp_path / "params.yaml")]
    command += ["--model-uri", str(params.path("model")), "--model-name", "model", "--port", str(port)]
    command += ["--workers", "2"]
    env = {**os.environ, "MODEL_VERSION": "7"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while not _ready(url):
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()[0]
            time.sleep(0.2)
        for start in range(0, 120, 3):  # a new connection each: the kernel spreads them over the workers
            batch = encode_request(rows.iloc[start : start + 3].reset_index(drop=True))
            assert httpx2.post(f"{url}{URL}", json=batch).status_code == 200
        metrics = httpx2.get(f"{url}/metrics").text
        parent = _resident_kib(process.pid)
        # The two largest children are the workers (the others: multiprocessing's resource tracker).
        workers = sorted(_resident_kib(pid) for pid in _children(process.pid))[-2:]
    finally:
        process.terminate()
        output = process.communicate(timeout=60)[0]
    assert 'model_server_requests_total{code="200",model="model"} 40.0' in metrics, metrics
    assert 'model_server_predicted_rows_total{model="model"} 120.0' in metrics
    assert "2 worker(s)" in output and output.count("predicting with fast path") == 2, output
    assert "stopped serving model version 7" in output, output
    # The parent only watches the workers: it holds uvicorn, not the model and its libraries.
    assert len(workers) == 2 and parent < min(workers) / 4, (parent, workers)
    logged = [read_current(name, params.data) for name in logged_files(str(tmp_path / "inputs"), hours=1)]
    assert sum(len(frame) for frame in logged) == 120


def test_sigterm_drains_readiness_503_requests_answered_and_logged(trained: tuple, tmp_path: Path) -> None:
    """SIGTERM under load: readiness turns 503 at once, every request during the drain is answered, every
    answered row is in the input log, and the server exits soon after serve.drain_seconds."""
    params, _, rows = trained
    shutil.copy(params.root / "params.yaml", tmp_path / "params.yaml")
    edit_params(tmp_path, serve={"log_inputs": str(tmp_path / "inputs"), "drain_seconds": 3})
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", PACKAGE, "serve", "--params", str(tmp_path / "params.yaml")]
    command += ["--model-uri", str(params.path("model")), "--model-name", "model", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    url = f"http://127.0.0.1:{port}"
    statuses: list[int | str] = []
    stop = threading.Event()
    batch = encode_request(rows.iloc[:3].reset_index(drop=True))

    def load() -> None:
        with httpx2.Client() as client:  # keep-alive, as a load balancer's connections
            while not stop.is_set():
                try:
                    statuses.append(client.post(f"{url}{URL}", json=batch).status_code)
                except httpx2.TransportError as exc:
                    statuses.append(type(exc).__name__)

    try:
        deadline = time.monotonic() + 300  # two workers load the model: slow on a busy machine
        while not _ready(url):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"the server did not get ready:\n{process.communicate()[0]}")
            time.sleep(0.2)
        threads = [threading.Thread(target=load) for _ in range(2)]
        for thread in threads:
            thread.start()
        time.sleep(1)
        process.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        time.sleep(0.5)
        ready = httpx2.get(f"{url}/v2/health/ready").status_code
        time.sleep(1.5)  # still inside the 3 s drain
        stop.set()
        for thread in threads:
            thread.join()
        output = process.communicate(timeout=60)[0]
        exited = time.monotonic() - stopped
    finally:
        stop.set()
        process.kill()
    assert ready == 503
    assert statuses and set(statuses) == {200}, [s for s in statuses if s != 200][:5]
    assert 3 <= exited < 15, exited
    assert "draining for 3 s" in output and "stopped serving" in output, output
    logged = [read_current(name, params.data) for name in logged_files(str(tmp_path / "inputs"), hours=1)]
    assert sum(len(frame) for frame in logged) == 3 * len(statuses)


def test_a_killed_worker_is_replaced_and_requests_succeed_again(trained: tuple, tmp_path: Path) -> None:
    """`kill -9` of a worker under keep-alive load: the supervisor starts a replacement that loads the model,
    the server stays ready, and requests succeed again (only those on the killed worker's connections fail)."""
    params, _, rows = trained
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", PACKAGE, "serve", "--params", str(params.root / "params.yaml")]
    command += ["--model-uri", str(params.path("model")), "--model-name", "model", "--port", str(port)]
    log = tmp_path / "server.log"
    with log.open("w") as output:
        process = subprocess.Popen([*command, "--workers", "2"], stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    statuses: list[int | str] = []
    stop = threading.Event()
    batch = encode_request(rows.iloc[:3].reset_index(drop=True))

    def announced() -> list[int]:
        return [int(line.split("(worker ")[1].split(")")[0]) for line in log.read_text().splitlines()
                if "): predicting with" in line]  # fmt: skip

    def load() -> None:
        with httpx2.Client() as client:  # keep-alive; a new connection after an error, as a pool does
            while not stop.is_set():
                try:
                    statuses.append(client.post(f"{url}{URL}", json=batch).status_code)
                except httpx2.TransportError as exc:
                    statuses.append(type(exc).__name__)

    threads = [threading.Thread(target=load) for _ in range(3)]
    try:
        deadline = time.monotonic() + 300  # two workers load the model: slow on a busy machine
        while len(announced()) < 2 or not _ready(url):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"the server did not get ready:\n{log.read_text()}")
            time.sleep(0.2)
        first = announced()
        for thread in threads:
            thread.start()
        time.sleep(1)
        os.kill(first[0], signal.SIGKILL)
        while len(announced()) < 3:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"no replacement worker:\n{log.read_text()}")
            time.sleep(0.2)
        replacement = announced()[2]
        time.sleep(1)  # the replacement starts accepting once its app is built
        answered_before = len(statuses)
        time.sleep(2)
        after = statuses[answered_before:]
        workers = [pid for pid in _children(process.pid) if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        # Every new connection is answered, whichever worker takes it.
        fresh = [httpx2.post(f"{url}{URL}", json=batch).status_code for _ in range(20)]
        ready = _ready(url)
    finally:
        stop.set()
        for thread in threads:
            if thread.is_alive():
                thread.join()
        process.terminate()
        process.wait(timeout=60)
    output = log.read_text()
    assert replacement not in first and sorted(workers) == sorted([first[1], replacement]), (first, workers, output)
    assert ready and after and set(after) == {200}, [s for s in after if s != 200][:5]
    assert set(fresh) == {200}, fresh
    # Only the killed worker's connections were cut: no request was answered with an error.
    assert all(s == 200 or isinstance(s, str) for s in statuses), {s for s in statuses if s != 200}
    assert len([s for s in statuses if s != 200]) <= len(threads), [s for s in statuses if s != 200]
    assert "Traceback" not in output, output


def test_several_workers_refuse_a_model_that_cannot_load(trained: tuple, tmp_path: Path) -> None:
    """A model that does not load stops `serve --workers 2` at once with its message and exit 2, before any
    worker starts (uvicorn would restart failing workers forever)."""
    params, _, _ = trained
    command = [sys.executable, "-m", PACKAGE, "serve", "--params", str(params.root / "params.yaml")]
    command += ["--model-uri", str(tmp_path / "no-model"), "--model-name", "model", "--workers", "2", "--port", "0"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == EXIT_BAD_INPUT, done.stdout + done.stderr
    assert f"cannot load the model at {tmp_path / 'no-model'}" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and "SpawnProcess" not in done.stderr, done.stderr


@pytest.mark.parametrize("workers", [1, 2])
def test_a_stop_signal_while_the_model_loads_stops_serve(trained: tuple, workers: int) -> None:
    """SIGTERM while the model loads ends `serve` at once, exit 143, saying so; nothing starts serving. (Left at
    the system default, which a container's first process never receives, it was lost and the server started.)"""
    params, _, _ = trained
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", PACKAGE, "serve", "--params", str(params.root / "params.yaml")]
    command += ["--model-uri", str(params.path("model")), "--model-name", "model", "--port", str(port)]
    command += ["--workers", str(workers)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        announced = process.stdout.readline()  # printed once the model is resolved, before it loads
        assert announced.startswith("serve: model version"), announced + process.communicate(timeout=60)[0]
        process.send_signal(signal.SIGTERM)
        output = announced + process.communicate(timeout=30)[0]
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGTERM, (process.returncode, output)
    assert "serve: stopped by SIGTERM before serving" in output, output
    assert "predicting with" not in output and "Traceback" not in output, output


def _loading_workers(pid: int) -> list[int]:
    """uvicorn's worker processes under `pid` that have begun to load the app (a SIGTERM handler is in place)."""
    found = []
    for child in _children(pid):
        try:
            if b"spawn_main" not in Path(f"/proc/{child}/cmdline").read_bytes():
                continue  # multiprocessing's resource tracker
            caught = int(Path(f"/proc/{child}/status").read_text().split("SigCgt:")[1].split()[0], 16)
        except (OSError, IndexError):
            continue
        if caught >> (signal.SIGTERM - 1) & 1:
            found.append(child)
    return found


def test_a_stop_signal_while_the_workers_load_stops_them(trained: tuple) -> None:
    """SIGTERM once both workers have begun loading stops each at once, before it serves (uvicorn's handlers
    alone only mark a server to stop: each worker loaded the whole model first, half a minute on a busy machine)."""
    params, _, _ = trained
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", PACKAGE, "serve", "--params", str(params.root / "params.yaml")]
    command += ["--model-uri", str(params.path("model")), "--model-name", "model", "--port", str(port)]
    command += ["--workers", "2"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while len(_loading_workers(process.pid)) < 2:
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()[0]
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=120)[0]
    finally:
        process.kill()
    assert output.count("serve: stopped by SIGTERM before serving") == 2, output
    assert "predicting with" not in output, output


def _ready(url: str) -> bool:
    try:
        return httpx2.get(f"{url}/v2/health/ready").status_code == 200
    except httpx2.TransportError:
        return False


def _resident_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0])


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (Linux /proc); uvicorn's workers, and its resource tracker."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, ValueError):
            continue
    return found


@pytest.fixture(scope="module")
def server(trained: tuple, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """The server as `serve` runs it, in its own process on a free local port: its URL and process id."""
    params, _, _ = trained
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", PACKAGE, "serve", "--params", str(params.root / "params.yaml")]
    command += ["--model-uri", str(params.path("model")), "--model-name", "model", "--port", str(port)]
    command += ["--workers", "1"]  # one process: the memory test reads its size
    env = {**os.environ, "MODEL_VERSION": "7", "MLFLOW_TRACKING_URI": f"sqlite:///{params.root / 'mlflow.db'}"}
    log = tmp_path_factory.mktemp("server") / "server.log"
    with log.open("w") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while not _ready(url):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the server did not start:\n{log.read_text()}")
        time.sleep(0.2)
    yield url, process.pid
    process.terminate()
    process.wait(timeout=20)


def _triton_inputs(rows: object, metadata: dict, binary: bool) -> list:
    inputs = []
    for spec in metadata["inputs"]:
        column = rows[spec["name"]]
        values = column.to_numpy(dtype=np.float64 if spec["datatype"] == "FP64" else object)
        tensor = triton.InferInput(spec["name"], [len(values)], spec["datatype"])
        inputs.append(tensor.set_data_from_numpy(values, binary_data=binary))
    return inputs


def test_tritonclient_drives_the_server(server: tuple, trained: tuple) -> None:
    """The Triton HTTP client sees a live, ready model and gets predict()'s labels, as JSON and as binary data."""
    url, _ = server
    _, model, rows = trained
    client = triton.InferenceServerClient(url.removeprefix("http://"))
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("model") and client.is_model_ready("model", model_version="7")
        assert not client.is_model_ready("model", model_version="8") and not client.is_model_ready("other")
        assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
        metadata = client.get_model_metadata("model", model_version="7")
        assert metadata["versions"] == ["7"] and [i["name"] for i in metadata["inputs"]] == list(rows.columns)
        assert client.get_model_metadata("model") == metadata

        batch = rows.dropna().head(20).reset_index(drop=True)
        expected = [int(v) for v in model.predict(batch)]
        for binary in (False, True):
            wanted = [triton.InferRequestedOutput("output-1", binary_data=binary)]
            result = client.infer("model", _triton_inputs(batch, metadata, binary), model_version="7", outputs=wanted)
            assert result.as_numpy("output-1").tolist() == expected
            assert ("data" in result.get_output("output-1")) is not binary
            assert result.get_response()["model_version"] == "7"

        # The client's defaults: binary tensors in, binary output back; a missing number travels as NaN.
        batch.loc[0, "monthly_charges"] = np.nan
        result = client.infer("model", _triton_inputs(batch, metadata, True))
        assert result.as_numpy("output-1").tolist() == [int(v) for v in model.predict(batch)]
        assert "parameters" in result.get_output("output-1")
        with pytest.raises(InferenceServerException, match="version '8' is not served here"):
            client.infer("model", _triton_inputs(batch, metadata, True), model_version="8")
        with pytest.raises(InferenceServerException, match="'age' row 1: null is not allowed"):
            client.infer("model", _triton_inputs(batch.assign(age=[30.0, np.nan, *batch["age"][2:]]), metadata, True))
    finally:
        client.close()


def _resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS in /proc/{pid}/status")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the server's memory from /proc (Linux)")
def test_chunked_body_over_the_limit_is_refused_early_in_bounded_memory(server: tuple) -> None:
    """A 200 MB chunked body (no Content-Length) gets 413 once it passes the limit; the server never holds it."""
    url, pid = server
    chunk, chunks = b" " * (1 << 20), 200
    sent = 0

    def body() -> Iterator[bytes]:
        nonlocal sent
        for _ in range(chunks):
            sent += len(chunk)
            yield chunk

    before = peak = _resident_mb(pid)
    done = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not done.wait(0.01):
            peak = max(peak, _resident_mb(pid))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        response = httpx2.post(f"{url}{URL}", content=body(), timeout=60)
    finally:
        done.set()
        watcher.join()
    assert response.status_code == 413, response.text
    assert "over the limit" in response.json()["error"]
    assert peak - before < 40, f"the server grew from {before:.0f} MB to {peak:.0f} MB"
    assert sent < chunks * len(chunk) / 2, f"the server read {sent >> 20} MB before it answered"
    assert httpx2.post(f"{url}{URL}", content=b"").status_code == 400  # still serving


def test_a_header_count_in_other_digits_gets_400(server: tuple, trained: tuple) -> None:
    """Inference-Header-Content-Length: ² (a digit to str.isdigit, not to int) gets 400, not 500."""
    url, _ = server
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps(encode_request(trained[2].head(2))).encode()
    # Sent as raw bytes: b"\xb2" is "²" as Starlette reads header values (latin-1); HTTP clients re-encode it.
    head = f"POST {URL} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {len(body)}\r\n"
    answer = b""
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head.encode() + b"Inference-Header-Content-Length: \xb2\r\n\r\n" + body)
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400"), answer[:400]
    assert b"must be the JSON header's length in bytes (0-9)" in answer


def test_client_leaving_mid_request_is_not_a_server_error(server: tuple) -> None:
    """A client that disconnects halfway through its body is counted apart (499), not as a 5xx."""
    url, _ = server
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as connection:
        head = f"POST {URL} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
        connection.sendall(head.encode() + b'{"inputs": [')
        time.sleep(0.2)
    deadline = time.monotonic() + 10
    while 'code="499"' not in (metrics := httpx2.get(f"{url}/metrics").text) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert 'model_server_requests_total{code="499",model="model"} 1.0' in metrics
    assert 'code="5' not in metrics
