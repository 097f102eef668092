"""Slow: install generated projects and run their own `make all`, `make test` and `make lint`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import generate, run

pytestmark = pytest.mark.slow

PROJECTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "custom-deployment-nomonitoring": {
        "project_name": "Fraud Detector",
        "package_name": "fraud",
        "model_name": "fraud-model",
        "serving_runtime": "deployment",
        "enable_monitoring": False,
    },
}


@pytest.mark.parametrize("answers", PROJECTS.values(), ids=list(PROJECTS))
def test_make_all_then_make_test(answers: dict[str, Any], tmp_path: Path) -> None:
    """`make all` trains, evaluates and registers; the project's tests and lint pass."""
    root = generate(tmp_path / "project", tmp_path / "remote", tasks=True, **answers)
    # The project's own default store; one OpenMP thread per process, as the two
    # projects train side by side on the test workers.
    env = {"MLFLOW_TRACKING_URI": "", "OMP_NUM_THREADS": "1"}
    out = run(["make", "all"], cwd=root, env=env)

    assert "registered as" in out and "alias 'challenger'" in out
    assert "gate           passed" in out
    metrics = json.loads((root / "reports/metrics.json").read_text())
    assert metrics["roc_auc"] >= 0.75
    assert (root / "dvc.lock").exists() and (root / "mlflow.db").exists()
    # The image build's inputs exist: the lock file and the rendered cluster pipeline.
    assert (root / "uv.lock").exists() and (root / "pipelines/training.yaml").exists()

    # Nothing left to do: the pipeline is reproducible from what it recorded.
    assert "Data and pipelines are up to date" in run(["make", "pipeline"], cwd=root, env=env)
    run(["make", "test"], cwd=root, env=env)
    run(["make", "lint"], cwd=root, env=env)
    # The schemas the project carries: no K8S_SCHEMAS_DIR, no network.
    run(["make", "validate"], cwd=root, env=env)
    check_local_serving(root, env)

    # Once the run is committed, a fresh clone gets data and every output back with `dvc pull`.
    run(["git", "add", "--all"], cwd=root)
    run(["git", "commit", "--quiet", "--no-verify", "-m", "First model"], cwd=root)
    clone = tmp_path / "clone"
    run(["git", "clone", "--quiet", str(root), str(clone)], cwd=tmp_path)
    run(["dvc", "pull", "--quiet"], cwd=clone, env={"PATH": f"{root / '.venv/bin'}:{os.environ['PATH']}"})
    assert (clone / "models/model/MLmodel").exists()


def _request(port: int, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    """Status and body of a request to the local server (4xx and 5xx answers included)."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method="POST" if body else "GET")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _v2_body(columns: dict[str, dict], rows: int) -> dict[str, Any]:
    """A V2 request with `rows` plausible rows for the data contract of params.yaml."""
    inputs = []
    for name, column in columns.items():
        if column["kind"] == "numeric":
            value, datatype = float(column.get("min", 0)) + 1, "FP64"
        else:
            value, datatype = column["allowed"][0], "BYTES"
        inputs.append({"name": name, "datatype": datatype, "shape": [rows], "data": [value] * rows})
    return {"inputs": inputs}


def check_local_serving(root: Path, env: dict[str, str]) -> None:
    """`make serve` on a free port answers V2 predictions, refuses bad requests with a 4xx, and counts them."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    params = yaml.safe_load((root / "params.yaml").read_text())
    model = params["register"]["model_name"]
    infer = f"/v2/models/{model}/infer"
    columns = params["data"]["columns"]
    server = subprocess.Popen(
        ["make", "serve", f"PORT={port}"],
        cwd=root,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.stdout.read().decode() if server.stdout else ""
            try:
                if _request(port, "/v2/health/ready")[0] == 200:
                    break
            except OSError:
                assert time.monotonic() < deadline, "the server did not become ready in 120 s"
                time.sleep(0.5)

        status, body = _request(port, infer, json.dumps(_v2_body(columns, 3)).encode())
        assert status == 200, body
        output = json.loads(body)["outputs"][0]
        assert output["shape"] == [3] and set(output["data"]) <= {0, 1}

        first = next(iter(columns))
        missing = {"inputs": _v2_body(columns, 2)["inputs"][1:]}
        wrong_type = _v2_body(columns, 2)
        wrong_type["inputs"][0]["data"] = ["many", "few"] if columns[first]["kind"] == "numeric" else [1, 2]
        extra = _v2_body(columns, 2)
        extra["inputs"].append({"name": "unexpected", "datatype": "BYTES", "shape": [2], "data": ["a", "b"]})
        bad = {
            "missing column": (missing, 400, f"missing ['{first}']"),
            "extra column": (extra, 400, "unknown ['unexpected']"),
            "wrong type": (wrong_type, 400, "row 0"),
            "empty body": (b" ", 400, "empty body"),
            "oversized batch": (_v2_body(columns, params["serve"]["max_batch_rows"] + 1), 413, "split the batch"),
        }
        for case, (payload, expected, message) in bad.items():
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            status, body = _request(port, infer, data)
            assert status == expected, f"{case}: {status} {body!r}"
            assert message in json.loads(body)["error"], f"{case}: {body!r}"
        assert _request(port, infer, json.dumps(_v2_body(columns, 1)).encode())[0] == 200

        status, metrics = _request(port, "/metrics")
        text = metrics.decode()
        assert status == 200
        assert f'model_server_requests_total{{code="200",model="{model}"}} 2.0' in text
        assert f'model_server_requests_total{{code="400",model="{model}"}} 4.0' in text
        assert f'model_server_requests_total{{code="413",model="{model}"}} 1.0' in text
        assert f'model_server_predicted_rows_total{{model="{model}"}} 4.0' in text
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.communicate(timeout=30)
