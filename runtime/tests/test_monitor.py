"""Monitoring: drift stays quiet on healthy data, names what moved, and flags outliers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_runtime.cli import EXIT_BAD_INPUT, EXIT_MONITOR_BREACH, main
from mlops_runtime.config import Params, load_params
from mlops_runtime.monitoring.current import read_current
from mlops_runtime.monitoring.drift import drift
from mlops_runtime.monitoring.input_log import InputLog, logged_files, schema_for
from mlops_runtime.monitoring.outliers import outliers
from mlops_runtime.monitoring.reference import load_reference
from mlops_runtime.monitoring.streaming import current_frames, current_stats, drift_from_stats
from mlops_runtime.sample_data import write_sample

from .conftest import PACKAGE, PROJECT_ROOT, edit_params, stage_modules

featurize, ingest, train, validate = stage_modules("featurize", "ingest", "train", "validate")

SEEDS = range(100, 140)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Params:
    """One model trained on 4000 sample rows, with its reference profile and outlier detector."""
    root = tmp_path_factory.mktemp("monitored")
    shutil.copy(PROJECT_ROOT / "params.yaml", root / "params.yaml")
    write_sample(root / "data/raw/customers.csv", rows=4000, seed=11)
    edit_params(root, train={"search": {"cv_folds": 2, "space": {"max_iter": [60], "max_depth": [3]}}})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        params = load_params(root / "params.yaml")
        for stage in (ingest, validate, featurize, train):
            stage.main(params)
    return params


def current_rows(tmp_path: Path, seed: int, rows: int = 1000) -> pd.DataFrame:
    """Fresh rows from the same process that made the training data."""
    return pd.read_csv(write_sample(tmp_path / f"current-{seed}.csv", rows=rows, seed=seed), dtype=str)


def check(trained: Params, frame: pd.DataFrame, tmp_path: Path) -> dict:
    path = tmp_path / "current.parquet"
    frame.to_parquet(path)
    profile, _ = load_reference(trained.path("model"))
    return drift(profile, read_current(str(path), trained.data), trained.monitor)


def test_healthy_data_rarely_alarms(trained: Params, tmp_path: Path) -> None:
    """Over 40 samples of healthy data the false alarm rate is at most 5%."""
    alarms = [check(trained, current_rows(tmp_path, seed), tmp_path)["breach"] for seed in SEEDS]
    assert sum(alarms) / len(alarms) <= 0.05, f"{sum(alarms)} false alarms in {len(alarms)} checks"


def test_half_sigma_shift_is_found_and_named(trained: Params, tmp_path: Path) -> None:
    """A 0.5 standard deviation shift of one number is a breach naming that feature only."""
    frame = current_rows(tmp_path, 7)
    tenure = pd.to_numeric(frame["tenure_months"])
    frame["tenure_months"] = (tenure + 0.5 * tenure.std()).astype(str)
    result = check(trained, frame, tmp_path)
    assert result["breach"] and result["drifted"] == ["tenure_months"]


def test_changed_category_mix_is_found(trained: Params, tmp_path: Path) -> None:
    """Customers moving to month-to-month contracts is drift of `contract`."""
    frame = current_rows(tmp_path, 8)
    rng = np.random.default_rng(0)
    frame["contract"] = rng.choice(["month-to-month", "one-year", "two-year"], size=len(frame), p=[0.9, 0.05, 0.05])
    result = check(trained, frame, tmp_path)
    assert result["breach"] and "contract" in result["drifted"]


@pytest.mark.parametrize("shift", [0.0, 0.5])
def test_streaming_verdict_is_the_in_memory_one(trained: Params, tmp_path: Path, shift: float) -> None:
    """Batch by batch over several files (as the drift job reads a day of logs), the same verdict as in memory."""
    frame = current_rows(tmp_path, seed=7, rows=6000)
    tenure = pd.to_numeric(frame["tenure_months"])
    frame["tenure_months"] = (tenure + shift * tenure.std()).astype(str)
    files = []
    for part, rows in enumerate(np.array_split(np.arange(len(frame)), 3)):
        files.append(str(tmp_path / f"part-{part}.parquet"))
        frame.iloc[rows].to_parquet(files[-1])
    profile, _ = load_reference(trained.path("model"))
    whole = pd.concat([read_current(name, trained.data) for name in files], ignore_index=True)
    in_memory = drift(profile, whole, trained.monitor)
    streamed = drift_from_stats(profile, current_stats(profile, files, trained.data), trained.monitor)
    assert streamed["rows"] == len(frame)
    assert streamed["drifted"] == in_memory["drifted"] and streamed["breach"] == in_memory["breach"]
    assert streamed["drift_share"] == in_memory["drift_share"]
    for name, feature in in_memory["features"].items():
        assert abs(streamed["features"][name]["distance"] - feature["distance"]) <= 0.01, name
    assert ("tenure_months" in streamed["drifted"]) == (shift > 0)


def input_log(trained: Params, folder: Path, clock) -> InputLog:
    """The server's log of the model's inputs (numbers as float64, text as strings) at a given time."""
    schema = schema_for((name, name in trained.data.numeric) for name in trained.data.features)
    return InputLog(folder, schema, window_minutes=60, clock=clock)


def as_served(trained: Params, frame: pd.DataFrame) -> pd.DataFrame:
    """Rows as the server hands them to its log: numbers parsed."""
    return frame.assign(**{name: pd.to_numeric(frame[name]) for name in trained.data.numeric})


def test_a_log_folder_is_read_as_a_time_window(trained: Params, tmp_path: Path, capsys) -> None:
    """`--current FOLDER` reads the closed log files of the last monitor.window_hours, not older ones."""
    folder = tmp_path / "inputs"
    now = time.time()
    input_log(trained, folder, lambda: now - 3 * 24 * 3600).write(as_served(trained, current_rows(tmp_path, 3, 50)))
    recent = input_log(trained, folder, lambda: now)
    for seed in (4, 5):
        recent.write(as_served(trained, current_rows(tmp_path, seed=seed, rows=200)))
    # What a worker killed while writing leaves: a file still named .open, which no reader takes.
    partial = next(folder.glob("*.parquet"))
    partial.with_name(partial.name.replace(".parquet", "-9.parquet.open")).write_bytes(partial.read_bytes()[:100])
    assert len(logged_files(str(folder), 24, now)) == 2
    code = main(drift_command(trained, folder, "--out", str(tmp_path / "report")))
    assert code == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "report/drift.json").read_text())["rows"] == recent.rows_written


@pytest.mark.parametrize("check", ["drift", "outliers"])
def test_a_log_folder_skips_and_names_what_it_cannot_read(trained: Params, tmp_path: Path, check: str) -> None:
    """A file without a footer, a pipe named like a log file and a file named for a window years ahead are
    left out and named; the check measures the readable files and never hangs on the pipe."""
    folder = tmp_path / "inputs"
    now = time.time()
    written = input_log(trained, folder, lambda: now)
    good = written.write(as_served(trained, current_rows(tmp_path, 3, 300)))
    broken = folder / good.name.replace("-000001", "-000002")
    broken.write_bytes(good.read_bytes()[:-200])  # no footer: what a writer cut short would leave
    pipe = folder / good.name.replace("-000001", "-000003")
    os.mkfifo(pipe)
    shifted = as_served(trained, current_rows(tmp_path, 4, 300)).assign(age=99.0, support_calls=40.0)
    future = input_log(trained, folder, lambda: 32503680000.0).write(shifted)  # 3000-01-01: not yet a window
    command = [sys.executable, "-m", PACKAGE, *drift_command(trained, folder, "--out", str(tmp_path))]
    command[4] = check
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=trained.root)
    assert done.returncode in (0, EXIT_MONITOR_BREACH), done.stdout + done.stderr  # a verdict, whichever
    said = done.stdout + done.stderr
    assert "skipped 3 file(s)" in said and all(str(path) in said for path in (broken, pipe, future)), said
    assert "not a regular file" in said and "window that starts later" in said and "parquet" in said, said
    result = json.loads((tmp_path / f"{check}.json").read_text())
    assert result["rows"] == written.rows_written
    assert {s["file"] for s in result["skipped"]} == {str(broken), str(pipe), str(future)}


def test_a_pipe_given_as_current_is_refused(trained: Params, tmp_path: Path) -> None:
    """--current naming a pipe (not a regular file) gets exit 2 and why, instead of waiting on it forever."""
    os.mkfifo(tmp_path / "inputs.parquet")
    command = [sys.executable, "-m", PACKAGE, *drift_command(trained, tmp_path / "inputs.parquet")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=trained.root)
    assert done.returncode == EXIT_BAD_INPUT and "is not a regular file" in done.stderr, done.stderr


@pytest.mark.parametrize("check", ["drift", "outliers"])
@pytest.mark.parametrize(
    ("column", "values", "held"),
    [
        ("region", lambda n: [["north", "south"]] * n, "list<"),
        ("age", lambda n: [[40.0]] * n, "list<"),
        ("age", lambda n: [True, False] * (n // 2), "bool"),
        ("tenure_months", lambda n: pd.date_range("2026-01-01", periods=n, freq="min"), "timestamp"),
    ],
    ids=["list-of-text", "list-of-numbers", "bool-number", "timestamp-number"],
)
def test_columns_that_are_no_feature_values_are_named(
    trained: Params, tmp_path: Path, check: str, column: str, values, held: str, capsys
) -> None:
    """Lists, true/false or times where the model takes one value (a number): exit 2 naming the column and its
    type, never a crash nor an outlier breach from times read as nanoseconds."""
    frame = as_served(trained, current_rows(tmp_path, 5, 400))
    frame[column] = list(values(len(frame)))
    frame.to_parquet(tmp_path / "current.parquet")
    command = drift_command(trained, tmp_path / "current.parquet", "--out", str(tmp_path / "out"))
    command[1] = check
    assert main(command) == EXIT_BAD_INPUT
    said = capsys.readouterr().err
    assert f"column {column!r} holds {held}" in said and "Traceback" not in said, said


def test_outliers_far_outside_the_training_range_are_flagged(trained: Params, tmp_path: Path) -> None:
    """Injected extreme rows are flagged; normal rows mostly are not."""
    _, detector = load_reference(trained.path("model"))
    normal = current_rows(tmp_path, 9, rows=2000)
    extreme = normal.head(200).copy()
    extreme["age"], extreme["monthly_charges"] = "400", "9000"
    for name, frame in (("normal", normal), ("extreme", extreme)):
        frame.to_parquet(tmp_path / f"{name}.parquet")
    normal_share = outliers(detector, [read_current(str(tmp_path / "normal.parquet"), trained.data)], 0.05)
    extreme_share = outliers(detector, [read_current(str(tmp_path / "extreme.parquet"), trained.data)], 0.05)
    assert normal_share["outlier_share"] < 0.05
    assert extreme_share["outlier_share"] > 0.95


def test_streamed_outlier_count_is_the_in_memory_one(trained: Params, tmp_path: Path) -> None:
    """Scored batch by batch over Parquet and CSV files, the same rows and outliers as all rows at once."""
    _, detector = load_reference(trained.path("model"))
    frame = current_rows(tmp_path, 12, rows=3000)
    frame.loc[frame.index[::30], "age"] = "400"  # 100 rows far outside the training range
    files = []
    for part, rows in enumerate(np.array_split(np.arange(len(frame)), 3)):
        if part == 1:
            files.append(str(tmp_path / f"part-{part}.csv"))
            frame.iloc[rows].to_csv(files[-1], index=False)
        else:
            files.append(str(tmp_path / f"part-{part}.parquet"))
            frame.iloc[rows].to_parquet(files[-1])
    whole = pd.concat([read_current(name, trained.data) for name in files], ignore_index=True)
    in_memory = outliers(detector, [whole], 0.05)
    streamed = outliers(detector, current_frames(files, trained.data, batch_rows=256), 0.05)
    assert streamed == in_memory and streamed["rows"] == len(frame)
    assert streamed["outliers"] >= 100


def test_cli_writes_report_and_metrics_and_exits_on_breach(trained: Params, tmp_path: Path, capsys) -> None:
    """`monitor drift` writes JSON, an HTML page with plots and Prometheus metrics; a breach exits 6."""
    frame = current_rows(tmp_path, 10)
    frame["support_calls"] = (pd.to_numeric(frame["support_calls"]) + 3).astype(str)
    frame.to_csv(tmp_path / "shifted.csv", index=False)
    args = ["--reference", str(trained.path("model")), "--params", str(trained.root / "params.yaml")]
    args += ["--current", str(tmp_path / "shifted.csv"), "--out", str(tmp_path / "out")]
    code = main(["monitor", "drift", *args, "--textfile", str(tmp_path / "drift.prom")])
    assert code == EXIT_MONITOR_BREACH
    assert "support_calls" in capsys.readouterr().err
    result = json.loads((tmp_path / "out/drift.json").read_text())
    assert result["drifted"] == ["support_calls"]
    page = (tmp_path / "out/drift.html").read_text()
    assert page.count("<img") == 1 and "DRIFT: support_calls" in page
    assert all(f"<td>{name}</td>" in page for name in trained.data.features)
    metrics = (tmp_path / "drift.prom").read_text()
    assert 'model_feature_drift{feature="support_calls"' in metrics and "model_drift_share" in metrics


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns=["age"]), "lacks the feature column(s) ['age']"),
        (lambda f: f.assign(tenure_months=["ten"] + list(f["tenure_months"][1:])), "'tenure_months' must be numeric"),
    ],
    ids=["missing-column", "wrong-type"],
)
def test_bad_current_data_is_named(trained: Params, tmp_path: Path, change, message: str, capsys) -> None:
    """A current file with a missing column or text in a numeric column: exit 2 and what is wrong."""
    change(current_rows(tmp_path, 12)).to_csv(tmp_path / "bad.csv", index=False)
    args = ["--reference", str(trained.path("model")), "--params", str(trained.root / "params.yaml")]
    assert main(["monitor", "drift", *args, "--current", str(tmp_path / "bad.csv")]) == EXIT_BAD_INPUT
    assert message in capsys.readouterr().err


def drift_command(trained: Params, current: Path, *extra: str) -> list[str]:
    args = ["--reference", str(trained.path("model")), "--params", str(trained.root / "params.yaml")]
    return ["monitor", "drift", *args, "--current", str(current), *extra]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_infinite_numbers_are_refused(trained: Params, tmp_path: Path, fmt: str, capsys) -> None:
    """inf or -inf in a numeric column is a broken value, not a measurement: exit 2 naming the column and rows."""
    frame = current_rows(tmp_path, 14)
    path = tmp_path / f"infinite.{fmt}"
    if fmt == "csv":
        frame.loc[[3, 7, 9], "monthly_charges"] = ["inf", "-inf", "Infinity"]
        frame.to_csv(path, index=False)
    else:
        numbers = pd.to_numeric(frame["monthly_charges"])
        numbers[[3, 7, 9]] = [np.inf, -np.inf, np.inf]
        frame.assign(monthly_charges=numbers).to_parquet(path)
    for check in ("drift", "outliers"):
        command = drift_command(trained, path, "--out", str(tmp_path / "out"))
        command[1] = check
        assert main(command) == EXIT_BAD_INPUT
        err = capsys.readouterr().err
        assert "'monthly_charges' must hold finite numbers" in err and "in 3 row(s)" in err, err
        assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("rows", [1, 90])
def test_too_few_rows_get_no_verdict(trained: Params, tmp_path: Path, rows: int, capsys) -> None:
    """Fewer current rows than monitor.min_rows (100): exit 2 and no report; --if-present succeeds without one."""
    path = tmp_path / "few.csv"
    current_rows(tmp_path, 15, rows=rows).to_csv(path, index=False)
    rows = len(pd.read_csv(path))  # every logged row counts, repeated ones too (the sample repeats a few)
    out = tmp_path / "out"
    assert main(drift_command(trained, path, "--out", str(out))) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert f"has {rows} row(s), fewer than monitor.min_rows (100)" in err and "drifted" not in err
    assert not out.exists()
    assert main(drift_command(trained, path, "--out", str(out), "--if-present")) == 0
    assert "nothing to measure" in capsys.readouterr().out and not out.exists()


def test_unwritable_report_folder_is_named(trained: Params, tmp_path: Path, capsys) -> None:
    """An --out that cannot be written: exit 2, one line naming it; and nothing is half-written."""
    current_rows(tmp_path, 16).to_csv(tmp_path / "current.csv", index=False)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    command = drift_command(trained, tmp_path / "current.csv", "--out", str(blocker / "reports"))
    assert main(command) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert f"cannot write {blocker / 'reports'}" in err and "--out" in err and len(err.strip().splitlines()) == 1
    assert blocker.read_text() == "not a folder"

    # A folder with an earlier report, and a metrics file that cannot be written: the old report stays whole.
    out = tmp_path / "out"
    out.mkdir()
    (out / "drift.json").write_text("earlier report")
    command = drift_command(trained, tmp_path / "current.csv", "--out", str(out), "--textfile", str(blocker / "m.prom"))
    assert main(command) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert f"cannot write {blocker / 'm.prom'}" in err and "--textfile" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in out.iterdir()) == ["drift.json"]
    assert (out / "drift.json").read_text() == "earlier report"


def test_unknown_reference_version_is_refused(trained: Params, tmp_path: Path, capsys) -> None:
    """A version that is not in the registry gets a clear message."""
    current_rows(tmp_path, 13).to_csv(tmp_path / "current.csv", index=False)
    args = [
        "--reference",
        "42",
        "--params",
        str(trained.root / "params.yaml"),
        "--current",
        str(tmp_path / "current.csv"),
    ]
    assert main(["monitor", "drift", *args]) == EXIT_BAD_INPUT
    assert "no such version or alias" in capsys.readouterr().err


def shifted_support_calls(tmp_path: Path) -> Path:
    """One of the eight features drifted: a drift share of 0.125, over params.yaml's 0.1."""
    frame = current_rows(tmp_path, 10)
    frame["support_calls"] = (pd.to_numeric(frame["support_calls"]) + 3).astype(str)
    frame.to_csv(tmp_path / "shifted.csv", index=False)
    return tmp_path / "shifted.csv"


def test_breach_threshold_comes_from_the_command_line(trained: Params, tmp_path: Path, capsys) -> None:
    """--max-drift-share replaces monitor.max_drift_share, as each environment's drift job passes its own."""
    shifted = shifted_support_calls(tmp_path)
    assert main(drift_command(trained, shifted, "--out", str(tmp_path / "a"))) == EXIT_MONITOR_BREACH
    assert main(drift_command(trained, shifted, "--out", str(tmp_path / "b"), "--max-drift-share", "0.25")) == 0
    assert json.loads((tmp_path / "b/drift.json").read_text())["drifted"] == ["support_calls"]
    capsys.readouterr()
    for bad in ("1.5", "-0.1", "nan", "a fifth"):
        with pytest.raises(SystemExit) as refused:
            main(drift_command(trained, shifted, "--max-drift-share", bad))
        assert refused.value.code == EXIT_BAD_INPUT
        assert "--max-drift-share" in capsys.readouterr().err


def test_reference_and_current_default_to_params(trained: Params, tmp_path: Path, capsys) -> None:
    """Without --reference the check compares with monitor.reference; without --current it reads serve.log_inputs."""
    shifted = shifted_support_calls(tmp_path)
    params = ["--params", str(trained.root / "params.yaml")]
    assert main(["monitor", "drift", *params, "--current", str(shifted)]) == EXIT_BAD_INPUT
    assert f"--reference {trained.monitor.reference}: no such version or alias" in capsys.readouterr().err
    assert main(["monitor", "drift", *params, "--reference", str(trained.path("model"))]) == EXIT_BAD_INPUT
    assert f"{trained.root / trained.serve.log_inputs} does not exist" in capsys.readouterr().err


def test_drift_dispatch_sends_a_breach_once(trained: Params, tmp_path: Path, monkeypatch, capsys) -> None:
    """`monitor drift --dispatch` (the drift job) sends a breach as `monitor dispatch` does, and health not at all;
    without a token the breach is still reported, with what to set."""
    server = HTTPServer(("127.0.0.1", 0), FakeGitHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    FakeGitHub.received = []
    monkeypatch.setenv("GITHUB_API_URL", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv("GITHUB_TOKEN", "token")
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/churn")
    shifted = shifted_support_calls(tmp_path)
    try:
        code = main(drift_command(trained, shifted, "--out", str(tmp_path / "out"), "--dispatch"))
        healthy = current_rows(tmp_path, 14)
        healthy.to_csv(tmp_path / "healthy.csv", index=False)
        quiet = main(drift_command(trained, tmp_path / "healthy.csv", "--out", str(tmp_path / "ok"), "--dispatch"))
    finally:
        server.shutdown()
        server.server_close()
    assert code == EXIT_MONITOR_BREACH and quiet == 0
    assert "sent drift-detected to acme/churn" in capsys.readouterr().err
    [sent] = FakeGitHub.received
    assert sent["body"]["event_type"] == "drift-detected"
    assert sent["body"]["client_payload"]["drifted"] == ["support_calls"]
    assert sent["body"]["client_payload"]["current"] == str(shifted)

    monkeypatch.delenv("GITHUB_TOKEN")
    assert main(drift_command(trained, shifted, "--out", str(tmp_path / "out"), "--dispatch")) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "support_calls" in err and "not sent" in err and "GITHUB_TOKEN" in err


@pytest.mark.parametrize(
    ("section", "key", "named"),
    [
        ("monitor", "schedule", "driftSchedule"),
        ("monitor", "current", "driftCurrent"),
        ("monitor", "pushgateway", "deploy/overlays/<env>/thresholds.yaml"),
        ("argo", "github_secret", "-github of its namespace"),
    ],
)
def test_keys_of_the_drift_job_are_refused_in_params(tmp_path: Path, section: str, key: str, named: str) -> None:
    """A drift-job key back in params.yaml (an update conflict resolved by hand) is named with where it went."""
    from mlops_runtime.errors import ParamsError

    shutil.copy(PROJECT_ROOT / "params.yaml", tmp_path / "params.yaml")
    edit_params(tmp_path, **{section: {key: "somewhere"}})
    with pytest.raises(ParamsError, match=f"{section}.*{key}") as refused:
        load_params(tmp_path / "params.yaml")
    assert named in str(refused.value)


class FakeGitHub(BaseHTTPRequestHandler):
    """Accepts POST /repos/<owner>/<name>/dispatches as GitHub does (204, no body)."""

    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeGitHub.received.append({"path": self.path, "auth": self.headers["Authorization"], "body": body})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("breach", [True, False], ids=["breach", "healthy"])
def test_dispatch_sends_only_breaches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, breach: bool, capsys) -> None:
    """A breach becomes one repository_dispatch `drift-detected` naming the drifted features; health sends nothing."""
    server = HTTPServer(("127.0.0.1", 0), FakeGitHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    FakeGitHub.received = []
    monkeypatch.setenv("GITHUB_API_URL", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv("GITHUB_TOKEN", "token")
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/churn")
    result = tmp_path / "drift.json"
    result.write_text(
        json.dumps({"breach": breach, "drifted": ["tenure_months"] if breach else [], "drift_share": 0.125})
    )
    try:
        assert main(["monitor", "dispatch", "--result", str(result)]) == 0
    finally:
        server.shutdown()
        server.server_close()
    if breach:
        [sent] = FakeGitHub.received
        assert sent["path"] == "/repos/acme/churn/dispatches" and sent["auth"] == "Bearer token"
        assert sent["body"]["event_type"] == "drift-detected"
        assert sent["body"]["client_payload"]["drifted"] == ["tenure_months"]
    else:
        assert FakeGitHub.received == [] and "nothing sent" in capsys.readouterr().out
