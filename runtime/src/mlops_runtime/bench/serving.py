"""Serving benchmark: this project's V2 server next to MLServer and `mlflow models serve` on the same model (JSON).

Run `make bench-serve` after `make all`. Each server runs in its own process,
one at a time, and serves the registry's candidate version (what `make serve`
serves). The load comes from a small closed-loop generator in this file:
C kept-alive HTTP/1.1 connections over raw sockets, each sending a pre-encoded
request as soon as the previous answer is in. It runs in this process, on the
same machine, so the JSON says how much CPU it used: judge the server's figures
against what was left for it. The figures are written to bench/serving.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import OVERRIDES_ENV, PARAMS_FILE, Params, load_params
from ..files import read_table
from ..serving.model import ServedModel, resolve_model
from .hostile import (
    BODY_BYTES,
    HOSTILE_REPEATS,
    HOSTILE_ROWS,
    LIFTED,
    LONG_VALUE_CHARS,
    hostile_bodies,
    hostile_memory,
    raw_text,
)
from .load import load, process_memory_mib, summary, timings
from .servers import Server, log_tail, mlflow_serve, mlserver, ours, post, running, shown, v2_body

# The last run's figures, in the project.
RECORD = Path("bench") / "serving.json"
SERVERS = ("ours", "mlserver", "mlflow")
ROWS = (1, 100)
CONNECTIONS = (1, 8)
# The goals this bench checks the project's server against.
THROUGHPUT_OVER_MLSERVER = 2.0
P50_OVER_PREDICT_MS = 1.0
P99_OVER_P50_AT_8 = 4.0
# A hostile body may raise a process's peak memory by no more than this over a normal 1,000-row body.
FLAT_PEAK_MIB = 50.0


# --- in-process timings -------------------------------------------------------


@dataclass
class ServerPath:
    """The server's own predict path in process: parse a V2 body, predict on what was parsed."""

    description: str
    parse: Callable[[bytes], Any]
    predict: Callable[[Any], Any]
    close: Callable[[], None]


def server_predict_path(params: Params, served: ServedModel) -> ServerPath | str:
    """The fast path the server predicts a parsed request with, built as a worker builds it; or why there is none.

    The app comes from serving.server.build_app (what every worker runs, so the
    path is chosen and checked exactly as at start-up), never started: its
    endpoints (app.state.endpoints) predict a request parsed by
    serving.protocol.parse_request. Without a fast path (the server predicts
    with pyfunc, or has nothing to look up here) the answer is a string saying
    so and the bench compares with pyfunc alone.
    """
    import io

    try:
        from mlops_runtime.serving import protocol, server
    except ImportError as exc:
        return f"none: the server cannot be imported ({exc})"
    build_app, parse_request = getattr(server, "build_app", None), getattr(protocol, "parse_request", None)
    if build_app is None or parse_request is None:
        return "none: no serving.server.build_app or serving.protocol.parse_request to build the server's path with"
    said = io.StringIO()
    try:
        with contextlib.redirect_stdout(said):  # start-up lines would mix with the JSON on stdout
            app = build_app(params, served)
    except Exception as exc:  # the server itself would not start either
        return f"none: building the server's app failed ({type(exc).__name__}: {exc})"
    endpoints = getattr(app.state, "endpoints", None)
    found = re.search(r"predicting with (.+)", said.getvalue())
    description = found.group(1).strip() if found else "the server's fast path"

    def close() -> None:
        observer = getattr(endpoints, "observer", None)
        if observer is not None:
            observer.close()

    if endpoints is None or getattr(endpoints, "fast", None) is None:
        close()
        return f"none: the server predicts with {description}" if found else "none: the server has no fast path"
    predict = getattr(endpoints, "_predictions", None) or (lambda parsed: endpoints.fast.predict(parsed.columns))
    columns, max_rows = endpoints.columns, endpoints.max_rows
    return ServerPath(
        description,
        parse=lambda body: parse_request(body, columns, max_rows),
        predict=lambda parsed: np.asarray(predict(parsed)).reshape(-1),
        close=close,
    )


# --- load generator -----------------------------------------------------------


def case_name(rows: int, connections: int) -> str:
    return f"{rows}_row{'s' if rows > 1 else ''}_{connections}_conn"


def measure(
    server: Server,
    frames: dict[int, pd.DataFrame],
    raw: pd.DataFrame,
    expected: list,
    folder: Path,
    seconds: float,
    warmup: float,
) -> dict[str, Any]:
    """Start the server, check it answers the same predictions as in process (on the rows and on the same
    rows as raw text), run every case, stop it."""
    report: dict[str, Any] = {**server.about, "command": shown(" ".join(server.command), folder)}
    log = folder / f"{server.name}.log"
    started = time.perf_counter()
    with running(server, log) as process:
        report["ready_after_s"] = round(time.perf_counter() - started, 1)
        if found := re.search(r"(\d+) worker\(s\)", log_tail(log, 50)):
            report["workers"] = int(found.group(1))
        bodies = {n: server.encode(frame) for n, frame in frames.items()}
        status, answer = post(server.port, server.infer_path, bodies[max(frames)])
        if status != 200:
            raise RuntimeError(f"{server.name} answered {status} to a {max(frames)}-row request: {answer[:300]!r}")
        report["same_predictions_as_in_process"] = server.predictions(json.loads(answer)) == expected
        status, answer = post(server.port, server.infer_path, server.encode(raw))
        report["raw_text_same_predictions"] = status == 200 and server.predictions(json.loads(answer)) == expected
        cases = {}
        for rows, body in bodies.items():
            report[f"request_bytes_{rows}"] = len(body)
            for connections in CONNECTIONS:
                print(f"bench: {server.name} {case_name(rows, connections)}", file=sys.stderr, flush=True)
                cases[case_name(rows, connections)] = load(
                    server.port, server.infer_path, body, connections, seconds, warmup, process.pid
                )
        report["cases"] = cases
        # After every case: what a pod's memory request has to hold.
        report["memory_mib"] = process_memory_mib(process.pid)
    return report


# --- memory under hostile bodies -----------------------------------------------


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


def comparison(servers: dict[str, Any], in_process: dict[str, Any]) -> tuple[dict, dict]:
    def cases(name: str) -> dict[str, Any]:
        entry = servers.get(name)
        return entry.get("cases", {}) if isinstance(entry, dict) else {}

    ours, mlserver, mlflow = cases("ours"), cases("mlserver"), cases("mlflow")
    ratios: dict[str, Any] = {
        "throughput_ours_over_mlserver": {c: ratio(ours[c]["rps"], mlserver[c]["rps"]) for c in ours if c in mlserver},
        "throughput_ours_over_mlflow": {c: ratio(ours[c]["rps"], mlflow[c]["rps"]) for c in ours if c in mlflow},
        "ours_p50_1_conn_minus_in_process_p50_ms": {},
        "ours_p99_over_p50_8_conn": {},
    }
    goals: dict[str, Any] = {
        f"throughput_at_least_{THROUGHPUT_OVER_MLSERVER:g}x_mlserver": None,
        f"p50_1_conn_within_{P50_OVER_PREDICT_MS:g}_ms_of_server_path_predict": None,
        f"p99_8_conn_at_most_{P99_OVER_P50_AT_8:g}x_p50": None,
    }
    if over := ratios["throughput_ours_over_mlserver"]:
        goals[f"throughput_at_least_{THROUGHPUT_OVER_MLSERVER:g}x_mlserver"] = {
            c: r is not None and r >= THROUGHPUT_OVER_MLSERVER for c, r in over.items()
        }
    within, tail = {}, {}
    for rows in ROWS:
        key = f"{rows}_row{'s' if rows > 1 else ''}"
        one, eight = ours.get(case_name(rows, 1)), ours.get(case_name(rows, 8))
        if one and one["p50_ms"] is not None:
            overhead = {}
            for path in ("pyfunc_predict", "server_path_predict", "server_path_parse_and_predict"):
                if isinstance(in_process.get(path), dict):
                    overhead[path] = round(one["p50_ms"] - in_process[path][key]["p50_ms"], 3)
            ratios["ours_p50_1_conn_minus_in_process_p50_ms"][key] = overhead
            if "server_path_predict" in overhead:
                within[key] = overhead["server_path_predict"] <= P50_OVER_PREDICT_MS
        if eight and eight["p50_ms"]:
            ratios["ours_p99_over_p50_8_conn"][key] = ratio(eight["p99_ms"], eight["p50_ms"])
            tail[key] = eight["p99_ms"] <= P99_OVER_P50_AT_8 * eight["p50_ms"]
    if within:
        goals[f"p50_1_conn_within_{P50_OVER_PREDICT_MS:g}_ms_of_server_path_predict"] = within
    if tail:
        goals[f"p99_8_conn_at_most_{P99_OVER_P50_AT_8:g}x_p50"] = tail
    return ratios, goals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path(PARAMS_FILE))
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring time per case (default: %(default)s)")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up time per case (default: %(default)s)")
    parser.add_argument("--only", default=",".join(SERVERS), help="servers to measure, of %(default)s")
    parser.add_argument("--workers", type=int, help="processes for this project's server (default: its own)")
    args = parser.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    if unknown := sorted(set(only) - set(SERVERS)):
        parser.error(f"--only {args.only}: unknown server(s) {unknown}; choose from {','.join(SERVERS)}")
    begun = time.perf_counter()
    load_average = os.getloadavg()
    # One OpenMP thread everywhere, as in a serving container: single-row predictions only lose
    # time to thread start-up and spinning, and all servers stay comparable. Set before scikit-learn loads.
    os.environ["OMP_NUM_THREADS"] = "1"

    import mlflow

    params = load_params(args.params)
    served = resolve_model(params, env=None, model_uri=None)
    rows = read_table(params.path("test"), produced_by="featurize")[params.data.features]
    if len(rows) < max(ROWS):
        raise SystemExit(f"the held-out set {params.path('test')} has {len(rows)} rows; the bench needs {max(ROWS)}")
    frames = {n: rows.head(n).reset_index(drop=True) for n in ROWS}
    raw = raw_text(frames[max(ROWS)], params.data.categorical)
    hostile = read_table(params.path("test"), produced_by="featurize")[params.data.features].head(HOSTILE_ROWS)
    long_column = "region" if "region" in params.data.categorical else params.data.categorical[0]

    with tempfile.TemporaryDirectory(prefix="bench-serving-") as scratch:
        folder = Path(scratch)
        # The same files every server loads: one download of the version the candidate alias points at.
        local = Path(mlflow.artifacts.download_artifacts(served.uri, dst_path=str(folder / "model")))
        model = mlflow.pyfunc.load_model(str(local))
        expected = np.asarray(model.predict(frames[max(ROWS)])).reshape(-1).tolist()
        raw_same = np.asarray(model.predict(raw)).reshape(-1).tolist() == expected

        def keyed(n: int) -> str:
            return f"{n}_row{'s' if n > 1 else ''}"

        in_process: dict[str, Any] = {
            # The model normalises text as ingest does: raw categories predict as the clean ones.
            "pyfunc_raw_text_same_predictions": raw_same,
            "pyfunc_predict": {
                keyed(n): summary(timings(lambda f=f: model.predict(f), args.seconds / 2)) for n, f in frames.items()
            },
        }
        path = server_predict_path(params, served)
        if isinstance(path, ServerPath):
            try:
                bodies = {n: v2_body(f) for n, f in frames.items()}
                parsed = {n: path.parse(b) for n, b in bodies.items()}
                in_process["server_path"] = path.description
                in_process["server_path_same_predictions"] = path.predict(parsed[max(ROWS)]).tolist() == expected
                in_process["server_path_raw_text_same_predictions"] = (
                    path.predict(path.parse(v2_body(raw))).tolist() == expected
                )
                in_process["server_path_predict"] = {
                    keyed(n): summary(timings(lambda p=p: path.predict(p), args.seconds / 2)) for n, p in parsed.items()
                }
                in_process["server_path_parse_and_predict"] = {
                    keyed(n): summary(timings(lambda b=b: path.predict(path.parse(b)), args.seconds / 2))
                    for n, b in bodies.items()
                }
            finally:
                path.close()
        else:
            in_process["server_path"] = path

        servers: dict[str, Any] = {}
        for name in only:
            try:
                if name == "ours":
                    server = ours(args.params, served.name, args.workers)
                elif name == "mlserver":
                    server = mlserver(local, served.name, folder)
                else:
                    server = mlflow_serve(local)
            except Exception as exc:  # a peer that cannot be set up is reported, and the others still run
                servers[name] = f"skipped: {exc}"
                print(f"bench: {name} skipped: {exc}", file=sys.stderr, flush=True)
                continue
            try:
                servers[name] = measure(server, frames, raw, expected, folder, args.seconds, args.warmup)
            except Exception as exc:
                servers[name] = f"failed: {exc}"
                print(f"bench: {name} failed: {exc}", file=sys.stderr, flush=True)

        hostile_report: dict[str, Any] | str = "not measured: --only leaves out ours"
        if "ours" in only:
            bodies = hostile_bodies(hostile, long_column)
            hostile_report = {
                "what": (
                    f"{HOSTILE_ROWS} held-out rows as a normal body, then with one {LONG_VALUE_CHARS:,}-character "
                    f"'{long_column}' value, then with one value making a {BODY_BYTES:,}-byte body; each posted "
                    f"{HOSTILE_REPEATS} times to a fresh server; each process's peak resident memory (VmHWM) after each"
                ),
            }
            for label, env in (("limits_as_shipped", {}), ("limits_lifted", {OVERRIDES_ENV: json.dumps(LIFTED)})):
                server = ours(args.params, served.name, args.workers)
                server.env.update(env)
                try:
                    hostile_report[label] = hostile_memory(server, bodies, folder, label)
                except Exception as exc:
                    hostile_report[label] = f"failed: {exc}"
                    print(f"bench: hostile bodies ({label}) failed: {exc}", file=sys.stderr, flush=True)
            hostile_report["limits_lifted_with"] = f"{OVERRIDES_ENV}={json.dumps(LIFTED)}"

    ratios, goals = comparison(servers, in_process)
    if isinstance(hostile_report, dict):
        goals[f"peak_memory_within_{FLAT_PEAK_MIB:g}_mib_of_normal_under_hostile_bodies"] = {
            label: all(growth <= FLAT_PEAK_MIB for growth in entry["peak_growth_over_normal_mib"].values())
            for label, entry in hostile_report.items()
            if isinstance(entry, dict)
        }
    report = {
        "model": f"{served.name} version {served.version} ({served.uri})",
        "cpus": os.cpu_count(),
        # Other work on the machine takes CPU from the servers and the load generator alike.
        "load_average_at_start": [round(v, 2) for v in load_average],
        "python": platform.python_version(),
        "omp_num_threads": 1,
        "load": {
            "generator": "closed loop in this process: kept-alive HTTP/1.1 over raw sockets, one selector thread",
            "seconds_per_case": args.seconds,
            "warmup_seconds_per_case": args.warmup,
            "rows": "the held-out set's first rows",
        },
        "in_process": in_process,
        "servers": servers,
        "hostile_bodies": hostile_report,
        "ratios": ratios,
        "goals": goals,
        "runtime_s": round(time.perf_counter() - begun, 1),
    }
    text = json.dumps(report, indent=2)
    RECORD.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
