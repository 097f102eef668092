"""Serving benchmark: V2 server latency and throughput next to in-process predict on the same rows (prints JSON).

Run `make bench-serve` after `make all`. The server runs in its own process, as
it does in production; requests go one at a time over a kept-alive connection.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .config import PARAMS_FILE, load_params
from .files import read_table
from .serve import encode_request, resolve_model


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def timings(call: Callable[[], Any], seconds: float, warmup: int = 20) -> list[float]:
    """Latencies of `call` repeated for about `seconds`, after a warm-up."""
    for _ in range(warmup):
        call()
    samples: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(float(np.percentile(samples, 50)) * 1000, 3),
        "p99_ms": round(float(np.percentile(samples, 99)) * 1000, 3),
        "rps": round(len(samples) / sum(samples), 1),
        "requests": len(samples),
    }


def http_timings(port: int, path: str, body: bytes, seconds: float) -> list[float]:
    """Latencies of POSTing `body`, one request at a time over one kept-alive connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def post() -> None:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        payload = response.read()
        if response.status != 200:
            raise RuntimeError(f"the server answered {response.status}: {payload[:200]!r}")

    try:
        return timings(post, seconds)
    finally:
        conn.close()


def wait_ready(port: int, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with code {process.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/v2/health/ready")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the server did not become ready within {timeout:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path(PARAMS_FILE))
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring time per case (default: %(default)s)")
    args = parser.parse_args(argv)
    # One OpenMP thread in both processes, as in a serving container: single-row predictions
    # only lose time to thread start-up and spinning, and the two sides stay comparable.
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    import mlflow

    params = load_params(args.params)
    served = resolve_model(params, env=None, model_uri=None)
    model = mlflow.pyfunc.load_model(served.uri)
    rows = read_table(params.path("test"), produced_by="featurize")[params.data.features]

    port = free_port()
    command = [sys.executable, "-m", __package__, "serve", "--params", str(args.params), "--port", str(port)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    results: dict[str, Any] = {}
    try:
        wait_ready(port, server)
        path = f"/v2/models/{served.name}/infer"
        for n in (1, 100):
            frame = rows.head(n).reset_index(drop=True)
            body = json.dumps(encode_request(frame)).encode()

            in_process = summary(timings(lambda frame=frame: model.predict(frame), args.seconds))
            over_http = summary(http_timings(port, path, body, args.seconds))
            results[f"{n}_row" if n == 1 else f"{n}_rows"] = {
                "in_process_predict": in_process,
                "http_v2": over_http,
                "p50_overhead_ms": round(over_http["p50_ms"] - in_process["p50_ms"], 3),
                "p50_ratio": round(over_http["p50_ms"] / in_process["p50_ms"], 2),
            }
    finally:
        server.terminate()
        server.wait(timeout=30)
    report = {
        "model": f"{served.name} version {served.version}",
        "server": "starlette + uvicorn, one process",
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "target_p50_overhead_ms": 5.0,
        "results": results,
        "median_overhead_ms": round(statistics.median(r["p50_overhead_ms"] for r in results.values()), 3),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
