"""The servers the serving benchmark runs, one at a time, each in its own process: the project's (`serve`),
MLServer (in a virtual environment of its own, cached) and `mlflow models serve`; started, waited for, stopped."""

from __future__ import annotations

import contextlib
import http.client
import importlib.metadata
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..project import package as project_package
from ..serving.protocol import encode_request

MLSERVER_VERSION = "1.7.1"
# Installed beside MLServer at the project's own versions, so every server unpickles the same model with the same code.
PINNED_LIKE_THE_PROJECT = ("mlflow", "scikit-learn", "pandas", "numpy", "cloudpickle")
# MLServer 1.7.1's inference worker processes call asyncio.get_event_loop() outside a running loop
# at start; uvloop 0.23 (what resolves otherwise) raises there, the workers die and MLServer never
# becomes ready. uvloop 0.21 does not raise.
MLSERVER_EXTRA = ("uvloop<0.22",)


@dataclass
class Server:
    """How to start one server and talk to it."""

    name: str
    command: list[str]
    port: int
    ready_path: str
    infer_path: str
    encode: Callable[[pd.DataFrame], bytes]
    predictions: Callable[[dict], list]
    about: dict[str, Any]
    cwd: Path | None = None
    env: dict[str, str] = field(default_factory=dict)


def child_env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    # `mlflow models serve` starts its web server by name: this interpreter's scripts come first.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get_status(port: int, path: str) -> int | None:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", path)
        status = conn.getresponse().status
        conn.close()
        return status
    except OSError:
        return None


def post(port: int, path: str, body: bytes) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def log_tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@contextlib.contextmanager
def running(server: Server, log: Path, timeout: float = 180) -> Iterator[subprocess.Popen]:
    """The server started in its own process group, ready; stopped (SIGTERM, then SIGKILL) and its port free after."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            server.command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**child_env(), **server.env},
            cwd=server.cwd,
            start_new_session=True,  # its own process group: workers and helpers stop with it
        )
    try:
        deadline = time.monotonic() + timeout
        while get_status(server.port, server.ready_path) != 200:
            if process.poll() is not None:
                raise RuntimeError(f"{server.name} exited with code {process.returncode}:\n{log_tail(log)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{server.name} was not ready within {timeout:.0f} s:\n{log_tail(log)}")
            time.sleep(0.25)
        yield process
    finally:
        stop(process)
        deadline = time.monotonic() + 30
        while get_status(server.port, server.ready_path) is not None and time.monotonic() < deadline:
            time.sleep(0.2)


def stop(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    # Workers may outlive their parent by a moment; the next server must not share the CPUs with them.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def shown(text: str, folder: Path) -> str:
    """A command or path as the record shows it: no scratch folder, home or interpreter path of this machine."""
    text = text.replace(sys.executable, "python").replace(str(folder), "<scratch>")
    return text.replace(str(Path.home()), "~")


def v2_body(frame: pd.DataFrame) -> bytes:
    return json.dumps(encode_request(frame)).encode()


def v2_predictions(answer: dict) -> list:
    return np.asarray(answer["outputs"][0]["data"]).reshape(-1).tolist()


def dataframe_split_body(frame: pd.DataFrame) -> bytes:
    """MLflow's scoring format, missing values as null."""
    values = frame.astype(object).where(frame.notna(), None)
    return json.dumps({"dataframe_split": {"columns": list(frame.columns), "data": values.values.tolist()}}).encode()


def mlflow_predictions(answer: dict) -> list:
    return np.asarray(answer["predictions"]).reshape(-1).tolist()


def ours(params_file: Path, name: str, workers: int | None) -> Server:
    port = free_port()
    command = [sys.executable, "-m", project_package(), "serve", "--params", str(params_file), "--port", str(port)]
    about: dict[str, Any] = {"what": "this project's server as shipped: params.yaml as it is"}
    if workers is not None:
        command += ["--workers", str(workers)]
    return Server("ours", command, port, "/v2/health/ready", f"/v2/models/{name}/infer", v2_body, v2_predictions, about)


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / f"{Path.cwd().name}-bench"


def mlserver_requirements() -> list[str]:
    requirements = [f"mlserver=={MLSERVER_VERSION}", f"mlserver-mlflow=={MLSERVER_VERSION}", *MLSERVER_EXTRA]
    for package in PINNED_LIKE_THE_PROJECT:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            requirements.append(f"{package}=={importlib.metadata.version(package)}")
    return requirements


def mlserver_venv() -> Path:
    """MLServer in its own environment (it pins fastapi<0.116, which the project's MLflow does not allow), made once.

    The environment is remade when the wanted requirements change (the stamp file lists them).
    """
    venv = cache_dir() / "mlserver"
    stamp = venv / "bench-requirements.txt"
    requirements = mlserver_requirements()
    wanted = "\n".join(requirements) + "\n"
    executable = venv / "bin" / "mlserver"
    if executable.exists() and stamp.exists() and stamp.read_text() == wanted:
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    print(f"bench: installing MLServer {MLSERVER_VERSION} in {venv} (once)", file=sys.stderr, flush=True)
    uv = shutil.which("uv")
    if uv:
        steps = [
            [uv, "venv", "--quiet", "--python", sys.executable, str(venv)],
            [uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), *requirements],
        ]
    else:
        steps = [
            [sys.executable, "-m", "venv", str(venv)],
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", *requirements],
        ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            shutil.rmtree(venv, ignore_errors=True)
            tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
            raise RuntimeError(f"`{' '.join([Path(step[0]).name, *step[1:3]])} ...` failed: {tail}")
    stamp.write_text(wanted)
    return venv


def mlserver(local: Path, name: str, folder: Path) -> Server:
    venv = mlserver_venv()
    port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    settings = folder / "mlserver"
    settings.mkdir()
    (settings / "settings.json").write_text(
        json.dumps({"http_port": port, "grpc_port": grpc_port, "metrics_port": metrics_port})
    )
    (settings / "model-settings.json").write_text(
        json.dumps({"name": name, "implementation": "mlserver_mlflow.MLflowRuntime", "parameters": {"uri": str(local)}})
    )
    workers = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "from mlserver.settings import Settings as S; print(S().parallel_workers)",
        ],
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=settings,
    ).stdout.strip()
    about = {
        "what": f"MLServer {MLSERVER_VERSION} with mlserver-mlflow (MLflowRuntime) on the same model folder",
        "parallel_workers": f"{workers or 'unknown'} (MLServer's default: inference in that many worker processes)",
        "settings": "defaults apart from the ports (its access log and metrics are on, as shipped)",
        "environment": shown(str(venv), folder),
    }
    return Server(
        "mlserver",
        [str(venv / "bin" / "mlserver"), "start", str(settings)],
        port,
        "/v2/health/ready",
        f"/v2/models/{name}/infer",
        v2_body,
        v2_predictions,
        about,
        cwd=settings,
    )


def mlflow_serve(local: Path) -> Server:
    import mlflow

    port = free_port()
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", str(local), "--env-manager", "local"]
    command += ["-h", "127.0.0.1", "-p", str(port)]
    about = {
        "what": f"stock `mlflow models serve` of MLflow {mlflow.__version__} (this project's), default workers",
        "request": "dataframe_split JSON to /invocations",
    }
    return Server("mlflow", command, port, "/ping", "/invocations", dataframe_split_body, mlflow_predictions, about)
