"""Bounded waits: a server that does not answer stops a command within servers.timeout_seconds, in one line."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlops_runtime.cli import EXIT_SUBMIT_FAILED, main

from .conftest import MODEL_NAME, PACKAGE, PROJECT_ROOT

BOUND = 2  # seconds (SERVER_TIMEOUT_SECONDS)
# Starting Python and importing MLflow comes on top of the bound.
SLACK = 12
MODEL = MODEL_NAME


@pytest.fixture(scope="module")
def silent() -> Iterator[str]:
    """A server that accepts connections and never answers: the wait is all the bound's."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)  # connections queue in the backlog, nobody accepts or reads
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()


@pytest.fixture(scope="module")
def refused() -> str:
    """An address where nothing listens: the connection is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder where every command gets as far as the registry: dev pins version 1, a change
    against `main`, and the reports the register stage and `promote --diff` read."""
    root = tmp_path / "project"
    root.mkdir()
    for name in ("params.yaml", ".copier-answers.yml"):
        shutil.copy(PROJECT_ROOT / name, root / name)
    shutil.copytree(PROJECT_ROOT / "deploy", root / "deploy")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "--quiet", "--initial-branch=main"], cwd=root, check=True)
    subprocess.run([*git, "add", "."], cwd=root, check=True)
    subprocess.run([*git, "commit", "--quiet", "-m", "Project"], cwd=root, check=True)
    dev = root / "deploy/overlays/dev/model.yaml"
    dev.write_text(dev.read_text().replace('version: "none"', 'version: "1"'))
    reports = {
        "reports/gate.json": {"passed": True, "failures": []},
        "reports/metrics.json": {"roc_auc": 0.8, "f1": 0.6, "accuracy": 0.8},
        "reports/slices.json": [],
        "models/model_info.json": {"run_id": "0" * 32, "model_uri": f"runs:/{'0' * 32}/model"},
    }
    for path, data in reports.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(json.dumps(data))
    (root / "current.csv").write_text("age\n30\n")
    monkeypatch.chdir(root)
    monkeypatch.setenv("SERVER_TIMEOUT_SECONDS", str(BOUND))
    # The commands set these for MLflow; the test restores them.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "120")
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    return root


REGISTRY_COMMANDS = {
    "promote": ["promote", "--env", "dev", "--version", "1"],
    "promote-check": ["promote", "--check", "--base", "main"],
    "promote-sync": ["promote", "--sync"],
    "promote-diff": ["promote", "--diff", "--env", "dev"],
    "register": ["register"],
    "serve": ["serve"],
    "serve-env": ["serve", "--env", "dev"],
    "serve-uri": ["serve", "--model-uri", f"models:/{MODEL}/1"],
    "monitor-drift": ["monitor", "drift", "--reference", "champion-dev", "--current", "current.csv"],
}


@pytest.mark.parametrize("command", list(REGISTRY_COMMANDS.values()), ids=list(REGISTRY_COMMANDS))
def test_a_silent_registry_stops_each_command_in_time(
    project: Path, silent: str, command: list[str], monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Every command that reads or writes the registry gives up after the bound: exit 5, one line naming the server."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", silent)
    started = time.monotonic()
    assert main(command) == EXIT_SUBMIT_FAILED
    elapsed = time.monotonic() - started
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert f"cannot reach the MLflow server at {silent}" in err and "SERVER_TIMEOUT_SECONDS" in err
    assert elapsed < BOUND + 3, f"{command} waited {elapsed:.1f} s with a bound of {BOUND} s"


def run(*args: str, env: dict[str, str], cwd: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", PACKAGE, *args],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done, time.monotonic() - started


@pytest.mark.parametrize("which", ["silent", "refused"])
def test_promote_against_an_unreachable_registry(project: Path, which: str, request: pytest.FixtureRequest) -> None:
    """The command as people run it: exit 5 within the bound, one line that says what to fix, no traceback."""
    uri = request.getfixturevalue(which)
    done, elapsed = run("promote", "--env", "dev", "--version", "1", env={"MLFLOW_TRACKING_URI": uri}, cwd=project)
    assert done.returncode == EXIT_SUBMIT_FAILED, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert f"promote: cannot reach the MLflow server at {uri}" in done.stderr
    assert "MLFLOW_TRACKING_URI" in done.stderr
    assert elapsed < BOUND + SLACK, f"waited {elapsed:.1f} s"


def test_a_silent_argo_server_stops_submit_in_time(silent: str, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """`pipeline submit` gives up on an Argo server that does not answer: exit 5, one line."""
    monkeypatch.chdir(PROJECT_ROOT)
    monkeypatch.setenv("ARGO_SERVER", silent)
    monkeypatch.setenv("SERVER_TIMEOUT_SECONDS", str(BOUND))
    started = time.monotonic()
    assert main(["pipeline", "submit", "--revision", "abc1234"]) == EXIT_SUBMIT_FAILED
    elapsed = time.monotonic() - started
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and f"cannot reach the Argo server at {silent}" in err, err
    assert f"no answer within {BOUND} s" in err
    assert elapsed < BOUND + 5, f"waited {elapsed:.1f} s"  # building the workflow takes a moment


@pytest.mark.parametrize("value", ["0", "soon", "-3"])
def test_a_wrong_bound_is_named(project: Path, value: str, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """SERVER_TIMEOUT_SECONDS must be a whole number of seconds: exit 2 and the fix."""
    monkeypatch.setenv("SERVER_TIMEOUT_SECONDS", value)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    assert main(["promote", "--sync"]) == 2
    assert "SERVER_TIMEOUT_SECONDS" in capsys.readouterr().err
