"""The monitoring benchmark next to serving: outlier scoring per request next to predict alone, `monitor outliers`
on logged rows, and the rows a worker killed with -9 under load loses from the input log."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import pandas as pd

from ..config import load_params
from ..files import read_table
from ..monitoring.reference import load_profile, load_reference
from ..project import package as project_package
from ..serving.fast_path import frame_columns
from ..serving.fast_path_check import check_rows, compile_detector, compile_model
from .child import median_seconds, run_child

# `monitor outliers` over a log file: the detector on batches (as the command runs) or on all rows at once.
OUTLIER_CHILD = """
import json, sys, time
from mlops_runtime.config import load_params
from mlops_runtime.monitoring import check  # noqa: F401  (the command's imports)
from mlops_runtime.monitoring.current import read_current
from mlops_runtime.monitoring.outliers import outliers
from mlops_runtime.monitoring.reference import load_reference
from mlops_runtime.monitoring.streaming import current_frames
mode, params_path, data = sys.argv[1:4]
params = load_params(params_path)
_, detector = load_reference(params.path("model"))
started = time.perf_counter()
frames = current_frames([data], params.data) if mode == "streaming" else [read_current(data, params.data)]
result = outliers(detector, frames, params.monitor.max_outlier_share)
print(json.dumps({"s": time.perf_counter() - started, "peak_mib": peak_mib(),
                  "rows": result["rows"], "outliers": result["outliers"]}))
"""
OUTLIER_ROWS = 1_000_000


def serving_figures(params_path: Path) -> dict[str, object]:
    import mlflow

    params = load_params(params_path)
    # The pyfunc flavour, as the model server predicts.
    model = mlflow.pyfunc.load_model(str(params.path("model")))
    _, detector = load_reference(params.path("model"))
    rows = read_table(params.path("test"), produced_by="featurize")[params.data.features].head(200)
    singles = [rows.iloc[[i]] for i in range(len(rows))]
    per_row = _per_call(singles)
    predict_ms = statistics.median(per_row(model.predict) for _ in range(3))
    score_ms = statistics.median(per_row(detector.flags) for _ in range(3))
    figures: dict[str, object] = {
        "predict_one_row_ms": round(predict_ms, 3),
        "outlier_scoring_one_row_ms": round(score_ms, 3),
        "ratio_scoring_vs_predict": round(score_ms / predict_ms, 2),
    }
    # What the server runs: the fast path on a request's columns, and the detector on the monitoring
    # thread's batches (what gathered in half a second).
    numeric = set(params.data.numeric)
    checks = check_rows(load_profile(params.path("model")), model.input_example)
    fast, said = compile_model(model, checks, numeric)
    fast_detector, scoring = compile_detector(detector, checks, numeric)
    figures["server_path"] = f"{said}; {scoring}"
    if fast is not None:
        per_request = _per_call([frame_columns(row, list(row.columns), numeric) for row in singles])
        fast_ms = statistics.median(per_request(fast.predict) for _ in range(3))
        batch = pd.concat([rows] * 20, ignore_index=True)  # 4000 rows
        batch_ms = median_seconds(lambda: fast_detector.flags(batch)) * 1000
        figures |= {
            "fast_path_predict_one_row_ms": round(fast_ms, 3),
            "ratio_fast_path_vs_pyfunc_predict": round(fast_ms / predict_ms, 3),
            "server_outlier_scoring_per_row_in_a_4000_row_batch_ms": round(batch_ms / len(batch), 4),
        }
    return figures


def outlier_figures(params_path: Path) -> dict[str, object]:
    """`monitor outliers` on OUTLIER_ROWS logged rows (the held-out rows repeated), streamed and in memory."""
    import tempfile

    import pyarrow as pa
    import pyarrow.parquet as pq

    params = load_params(params_path)
    rows = read_table(params.path("test"), produced_by="featurize")[params.data.features]
    # Row groups of 131,072 rows, as the server's log has when busy.
    table = pa.Table.from_pandas(rows, preserve_index=False)
    group = pa.concat_tables([table] * -(-131_072 // len(table))).slice(0, 131_072)
    with tempfile.TemporaryDirectory(prefix="bench-outliers-") as folder:
        data = Path(folder) / "inputs.parquet"
        with pq.ParquetWriter(data, table.schema, compression="zstd") as writer:
            for start in range(0, OUTLIER_ROWS, len(group)):
                writer.write_table(group.slice(0, min(len(group), OUTLIER_ROWS - start)))
        streamed = run_child(OUTLIER_CHILD, "streaming", str(params_path), str(data))
        in_memory = run_child(OUTLIER_CHILD, "in-memory", str(params_path), str(data))
    return {
        "rows": streamed["rows"],
        "streaming_s": round(streamed["s"], 2),
        "streaming_peak_mib": round(streamed["peak_mib"]),
        "in_memory_s": round(in_memory["s"], 2),
        "in_memory_peak_mib": round(in_memory["peak_mib"]),
        "ratio_time_streaming_vs_in_memory": round(streamed["s"] / in_memory["s"], 2),
        "ratio_memory_streaming_vs_in_memory": round(streamed["peak_mib"] / in_memory["peak_mib"], 2),
        "same_count": streamed["outliers"] == in_memory["outliers"] and streamed["rows"] == in_memory["rows"],
    }


# A worker killed with -9 under load, just before its next flush (the worst case): the rows answered against
# the rows the input log kept. The load goes on AFTER_KILL_S after the kill.
AFTER_KILL_S, CLIENTS, ROWS_PER_REQUEST = 10.0, 4, 10


def killed_worker_figures(params_path: Path) -> dict[str, object]:
    """`serve --workers 2` logging its inputs, under load from CLIENTS threads; one worker gets SIGKILL one
    second before its second flush is due (the supervisor starts another), the load goes on, then a clean stop.
    Rows answered (200) minus rows in whole log files is what the kill lost; the flush interval bounds it."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import tempfile
    import threading
    import urllib.request

    import pyarrow.parquet as pq
    import yaml

    from mlops_runtime.serving.protocol import encode_request

    params = load_params(params_path)
    rows = read_table(params.path("test"), produced_by="featurize")[params.data.features]
    bodies = [
        json.dumps(encode_request(rows.iloc[i : i + ROWS_PER_REQUEST].reset_index(drop=True))).encode()
        for i in range(0, len(rows) - ROWS_PER_REQUEST, ROWS_PER_REQUEST)
    ]
    with tempfile.TemporaryDirectory(prefix="bench-killed-worker-") as folder:
        settings = yaml.safe_load(params_path.read_text())
        settings["serve"]["log_inputs"] = str(Path(folder) / "inputs")
        Path(folder, "params.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        command = [sys.executable, "-m", project_package(), "serve", "--params", str(Path(folder, "params.yaml"))]
        command += ["--model-uri", str(params.path("model")), "--model-name", "model", "--port", str(port)]
        command += ["--workers", "2"]
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            command,
            env={**os.environ, "MODEL_VERSION": "1"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            _wait_ready(url, server)
            answered, stop = [0] * CLIENTS, threading.Event()

            def load(client: int) -> None:
                for n in range(10**9):
                    if stop.is_set():
                        return
                    request = urllib.request.Request(
                        f"{url}/v2/models/model/infer", bodies[(n * CLIENTS + client) % len(bodies)],
                        {"content-type": "application/json"},
                    )  # fmt: skip
                    try:  # a new connection each: the kernel spreads them over the workers
                        with urllib.request.urlopen(request, timeout=10) as response:
                            answered[client] += ROWS_PER_REQUEST if response.status == 200 else 0
                    except OSError:
                        pass  # the killed worker's connections: not answered, not counted

            threads = [threading.Thread(target=load, args=(i,)) for i in range(CLIENTS)]
            for thread in threads:
                thread.start()
            started, flush = time.monotonic(), params.serve.log_flush_seconds
            victim = _workers(server.pid)[0]
            # Its first file says when it flushed; the next flush is due log_flush_seconds later.
            while not list(Path(folder, "inputs").glob(f"inputs-*-{victim}-*.parquet")):
                if time.monotonic() - started > 3 * flush + 60:
                    raise RuntimeError(f"worker {victim} wrote no input log file in {3 * flush + 60:.0f} s")
                time.sleep(0.1)
            time.sleep(max(flush - 1.0, 0.0))
            before_kill, until_kill = sum(answered), time.monotonic() - started
            os.kill(victim, signal.SIGKILL)
            time.sleep(AFTER_KILL_S)
            load_s = time.monotonic() - started
            stop.set()
            for thread in threads:
                thread.join()
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=120)
        logged = sum(pq.read_metadata(name).num_rows for name in Path(folder, "inputs").glob("inputs-*.parquet"))
    predicted = sum(answered)
    lost = predicted - logged
    # The killed worker took about half the load; at most its last flush interval (and the half second a
    # batch gathers) was unwritten when it died.
    per_worker_rate = before_kill / until_kill / 2
    bound = per_worker_rate * (flush + 0.5)
    return {
        "workers": 2,
        "clients": CLIENTS,
        "rows_per_request": ROWS_PER_REQUEST,
        "load_s": round(load_s, 1),
        "killed_after_s": round(until_kill, 1),
        "log_flush_seconds": flush,
        "rows_predicted": predicted,
        "rows_logged": logged,
        "rows_lost": lost,
        "lost_seconds_of_the_killed_worker": round(lost / per_worker_rate, 1) if per_worker_rate else None,
        "bound_rows_flush_interval": round(bound),
        "within_bound": lost <= bound,
        # What the log lost before files were written whole every flush: all the killed worker's rows of the
        # open window (its file had no footer), here every row it answered before the kill.
        "baseline_rows_of_the_killed_worker_before_kill": round(before_kill / 2),
        "ratio_lost_vs_baseline": round(lost / (before_kill / 2), 3) if before_kill else None,
    }


def _wait_ready(url: str, server, timeout: float = 180) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"serve exited with code {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"serve was not ready within {timeout:.0f} s")


def _workers(parent: int) -> list[int]:
    """The worker processes of the server (multiprocessing's spawned children), not its resource tracker."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            spawned = b"spawn_main" in (entry / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent and spawned:
            found.append(int(entry.name))
    return sorted(found)


def _per_call(inputs: list):
    """A timer of `call` over every input, after a warm-up: milliseconds per call."""

    def per_call(call) -> float:
        for one in inputs[:20]:
            call(one)
        start = time.perf_counter()
        for one in inputs:
            call(one)
        return (time.perf_counter() - start) / len(inputs) * 1000

    return per_call
