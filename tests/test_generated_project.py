"""Slow: install generated projects and run their own `make all`, `make test` and `make lint`."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import REPO_ROOT, generate, run

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
    run(["make", "setup"], cwd=root, env=env)
    # A first branch before the pipeline ever ran: no output has a recorded version, and the switch works.
    switched = plain_shell("git switch --quiet -c first-idea && git switch --quiet main", root)
    assert switched.returncode == 0, switched.stdout
    assert len(re.findall(r"^DVC checkout\.+Passed$", switched.stdout, re.MULTILINE)) == 2, switched.stdout
    out = run(["make", "all"], cwd=root, env=env)
    # Whatever the installed environment can import is a package name the template refuses.
    reserved = [sys.executable, str(REPO_ROOT / "scripts/reserved_names.py"), "--check", "--python"]
    run([*reserved, str(root / ".venv/bin/python")], cwd=REPO_ROOT)

    assert "registered as" in out and "alias 'challenger'" in out
    assert "gate           passed" in out
    metrics = json.loads((root / "reports/metrics.json").read_text())
    assert metrics["roc_auc"] >= 0.75
    assert (root / "dvc.lock").exists() and (root / "mlflow.db").exists()
    # The image build's inputs exist: the lock file and the rendered cluster pipeline.
    assert (root / "uv.lock").exists() and (root / "pipelines/training.yaml").exists()
    # The tree is clean but for what the summary says to commit; the lock came with the first commit.
    assert_only_listed_files_pending(root, out)

    # Nothing left to do: the pipeline is reproducible from what it recorded.
    assert "Data and pipelines are up to date" in run(["make", "pipeline"], cwd=root, env=env)
    run(["make", "test"], cwd=root, env=env)
    if not answers:
        # The runtime's own tests run once, here, against the default project and its environment.
        runtime = REPO_ROOT / "runtime"
        pytest_runtime = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", str(runtime / "pyproject.toml")]
        pytest_runtime += [
            "--rootdir",
            str(runtime),
            "--basetemp",
            str(tmp_path / "runtime-tests"),
            str(runtime / "tests"),
        ]
        out = run(
            [str(root / ".venv/bin/python"), *pytest_runtime],
            cwd=root,
            env={**env, "RUNTIME_TEST_PROJECT": str(root)},
            timeout=1800,
        )
        assert " passed" in out and "failed" not in out, out[-2000:]
    run(["make", "lint"], cwd=root, env=env)
    # The schemas the project carries: no K8S_SCHEMAS_DIR, no network.
    run(["make", "validate"], cwd=root, env=env)
    check_local_serving(root, env)

    # Committed and pushed from a shell without .venv/bin on PATH: the hooks find the project's tools.
    commit_and_push_from_a_plain_shell(root, tmp_path / "origin.git")

    # Once the run is committed, a fresh clone gets data and every output back with `dvc pull`.
    clone = tmp_path / "clone"
    run(["git", "clone", "--quiet", str(root), str(clone)], cwd=tmp_path)
    run(["dvc", "pull", "--quiet"], cwd=clone, env={"PATH": f"{root / '.venv/bin'}:{os.environ['PATH']}"})
    assert (clone / "models/model/MLmodel").exists()

    check_promotion_pull_request(root, env, tmp_path / "pr.md")


def check_promotion_pull_request(root: Path, env: dict[str, str], body: Path) -> None:
    """`make all` wrote a complete model card; the promotion PR shows it, and its charts parse as GitHub parses them."""
    assert "model card     complete" in run(["make", "summary"], cwd=root, env=env)
    run(["make", "promote", "ENV=dev", "VERSION=1", f"BODY={body}"], cwd=root, env=env)
    text = body.read_text()
    assert "<summary>Model card of the challenger v1</summary>" in text and "## Intended use" in text
    node = shutil.which("node")
    assert node, "Node is needed to parse the Mermaid charts: install nodejs"
    assert (REPO_ROOT / "node_modules/mermaid").is_dir(), "mermaid is not installed: run make setup"
    parsed = subprocess.run(
        [node, str(REPO_ROOT / "tests/mermaid_parse.mjs"), str(body)], capture_output=True, text=True, timeout=120
    )
    assert parsed.returncode == 0, parsed.stderr
    charts = json.loads(parsed.stdout)
    assert len(charts) >= 2 and all(chart == {"type": "xychart"} for chart in charts), charts


def assert_only_listed_files_pending(root: Path, make_all_output: str) -> None:
    """`git status` shows exactly the files of the summary's `git add` line, and uv.lock is already in git."""
    line = next(line for line in make_all_output.splitlines() if line.strip().startswith("commit these"))
    command = shlex.split(line.split("commit these", 1)[1])
    assert command[:2] == ["git", "add"], line
    status = run(["git", "status", "--porcelain", "-z", "--untracked-files=all"], cwd=root)
    pending = sorted(entry[3:] for entry in status.split("\0") if entry)
    assert pending == sorted(command[2:])
    assert {"dvc.lock", "reports/metrics.json", "models/model_info.json", "pipelines/training.yaml"} <= set(pending)
    assert "uv.lock" not in pending and run(["git", "ls-files", "uv.lock"], cwd=root).strip() == "uv.lock"


def plain_shell(cmd: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`cmd` in bash with the system PATH only (no .venv/bin, no activated environment), a home and a git identity."""
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ["HOME"]}
    env |= {key: value for key, value in os.environ.items() if key.startswith(("GIT_AUTHOR_", "GIT_COMMITTER_"))}
    done = subprocess.run(["bash", "-c", cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    done.stdout += done.stderr  # git hands the hooks' output to stderr
    return done


def commit_and_push_from_a_plain_shell(root: Path, origin: Path) -> None:
    """The commit hooks run (a lint error blocks the commit), then pass; the pre-push hook pushes the DVC outputs."""
    package = yaml.safe_load((root / ".copier-answers.yml").read_text())["package_name"]
    module = root / "src" / package / "checked_on_commit.py"
    module.write_text("def answer() -> int:\n    return undefined_name\n")
    head = run(["git", "rev-parse", "HEAD"], cwd=root)
    blocked = plain_shell("git add -A && git commit -m 'First model'", root)
    assert blocked.returncode != 0 and "undefined_name" in blocked.stdout, blocked.stdout
    assert run(["git", "rev-parse", "HEAD"], cwd=root) == head

    module.write_text("def answer() -> int:\n    return 42\n")
    done = plain_shell("git add -A && git commit -m 'First model'", root)
    assert done.returncode == 0, done.stdout
    for hook in ("ruff lint", "ruff format", "check YAML", "DVC status"):
        assert re.search(rf"^{hook}\.+Passed$", done.stdout, re.MULTILINE), f"{hook} did not run:\n{done.stdout}"
    assert run(["git", "status", "--porcelain"], cwd=root) == ""

    run(["git", "init", "--quiet", "--bare", str(origin)], cwd=root)
    pushed = plain_shell(f"git remote add origin {shlex.quote(str(origin))} && git push --quiet origin HEAD", root)
    assert pushed.returncode == 0 and re.search(r"^DVC push\.+Passed$", pushed.stdout, re.MULTILINE), pushed.stdout
    switched = plain_shell("git checkout --quiet -b plain-shell", root)
    assert switched.returncode == 0 and re.search(r"^DVC checkout\.+Passed$", switched.stdout, re.MULTILINE), (
        switched.stdout
    )

    # Data the commit records but the DVC cache lacks: the switch names it and the command that fetches it.
    cache, away = root / ".dvc/cache", root / ".dvc/cache-away"
    cache.rename(away)
    shutil.rmtree(root / "data/raw")
    try:
        back = plain_shell("git switch --quiet main", root)
    finally:
        away.rename(cache)
    assert back.returncode != 0 and re.search(r"^DVC checkout\.+Failed$", back.stdout, re.MULTILINE), back.stdout
    assert "does not hold: data/raw" in back.stdout and "dvc pull" in back.stdout, back.stdout
    run([str(root / ".venv/bin/dvc"), "checkout", "--quiet"], cwd=root)
    assert (root / "data/raw").is_dir()


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
