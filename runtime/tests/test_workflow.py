"""The Argo workflow is the local pipeline: same steps, same edges, same commands."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import yaml

from mlops_runtime.argo.dag import task_name
from mlops_runtime.argo.render import load_module
from mlops_runtime.cli import EXIT_BAD_INPUT, EXIT_SUBMIT_FAILED, main
from mlops_runtime.config import load_params

from .conftest import PACKAGE, PROJECT_ROOT

training = load_module(PROJECT_ROOT, "training")
spec = training.workflow.build().spec
templates = {t.name: t for t in spec.templates}
dag_tasks = templates["training"].dag.tasks


def dvc_edges() -> set[tuple[str, str]]:
    """(upstream, downstream) pairs of `dvc dag`, read independently of stage_graph."""
    dot = subprocess.run(
        [sys.executable, "-m", "dvc", "dag", "--dot"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    ).stdout
    return {(task_name(a), task_name(b)) for a, b in re.findall(r'"([^"]+)"\s*->\s*"([^"]+)"', dot)}


def workflow_edges() -> set[tuple[str, str]]:
    edges = set()
    for task in dag_tasks:
        for upstream in re.findall(r"[a-z0-9-]+", (task.depends or "").replace(".Succeeded", "")):
            edges.add((upstream, task.name))
    return edges


def test_dag_has_the_dvc_stages_and_edges() -> None:
    """Every dvc.yaml stage is a task with the same upstream stages; register comes after evaluate."""
    edges = workflow_edges()
    assert {e for e in edges if e[1] != "register"} == dvc_edges()
    assert ("evaluate", "register") in edges


def test_register_is_gated_on_a_successful_evaluation() -> None:
    """A skipped or failed evaluate never lets register run, nor does a failed gate."""
    register = next(task for task in dag_tasks if task.name == "register")
    assert register.depends == "evaluate.Succeeded"
    assert "outputs.parameters.gate" in register.when and "passed" in register.when


@pytest.mark.parametrize("template", [t for t in templates if t != "training"])
def test_every_task_runs_a_real_command(template: str) -> None:
    """Each task's command exists: it answers --help in this environment."""
    command = templates[template].container.command
    assert command[:3] == ["python", "-m", PACKAGE] or command[:2] == ["dvc", "pull"]
    # Executables of this environment, as in the image (python, dvc).
    program = sys.executable if command[0] == "python" else str(Path(sys.executable).parent / command[0])
    done = subprocess.run([program, *command[1:], "--help"], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_pods_run_as_the_image_user() -> None:
    """The workflow's pods, like every serving pod, run with deploy/components/pod-security, as the image's user."""
    pod_security = PROJECT_ROOT / "deploy/components/pod-security/pod-security.yaml"
    context = yaml.safe_load(pod_security.read_text())["spec"]["securityContext"]
    assert spec.security_context.model_dump(by_alias=True, exclude_none=True) == context
    image_user = re.search(r"^ARG APP_UID=(\d+)$", (PROJECT_ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert image_user, "the Dockerfile sets no ARG APP_UID"
    assert context["runAsUser"] == int(image_user[1]), f"{pod_security} and the Dockerfile name different users"


def test_parameter_overrides_reach_the_stages(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PARAMS_OVERRIDES, as the workflow passes it, is merged over params.yaml."""
    monkeypatch.setenv("PARAMS_OVERRIDES", json.dumps({"train": {"seed": 99}, "featurize": {"test_size": 0.3}}))
    params = load_params(workdir / "params.yaml")
    assert params.train.seed == 99 and params.featurize.test_size == 0.3
    assert params.train.estimator  # the rest of the section is kept


def test_render_check_catches_a_stale_snapshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`pipeline render --check` fails when the YAML on disk differs from the module."""
    monkeypatch.chdir(PROJECT_ROOT)
    assert main(["pipeline", "render", "--out", str(tmp_path)]) == 0
    assert main(["pipeline", "render", "--check", "--out", str(tmp_path)]) == 0
    snapshot = tmp_path / "training.yaml"
    snapshot.write_text(snapshot.read_text().replace("retryPolicy: OnTransientError", "retryPolicy: Always"))
    assert main(["pipeline", "render", "--check", "--out", str(tmp_path)]) == EXIT_BAD_INPUT


class FakeArgo(BaseHTTPRequestHandler):
    """Answers POST /api/v1/workflows/<ns> like an Argo server, with a status chosen per test."""

    status = 200
    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeArgo.received.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        if self.status == 200:
            workflow = body["workflow"]
            meta = {"name": workflow["metadata"]["generateName"] + "abcde", "namespace": self.path.split("/")[-1]}
            reply = {**workflow, "metadata": {**workflow["metadata"], **meta}}
        else:
            reply = {"code": {401: 16, 409: 6}.get(self.status, 2), "message": f"status {self.status}"}
        payload = json.dumps(reply).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def argo_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakeArgo]]:
    server = HTTPServer(("127.0.0.1", 0), FakeArgo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.chdir(PROJECT_ROOT)
    monkeypatch.setenv("ARGO_SERVER", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv("ARGO_TOKEN", "secret-token")
    monkeypatch.setenv("ARGO_NAMESPACE", "ml-runs")
    FakeArgo.received = []
    yield FakeArgo
    server.shutdown()
    server.server_close()


def test_submit_prints_the_workflow_and_its_link(argo_server, capsys: pytest.CaptureFixture[str]) -> None:
    """A run is submitted for the revision, with overrides, and reported with its UI link."""
    argo_server.status = 200
    assert main(["pipeline", "submit", "--revision", "abc1234", "--set", "train.seed=7"]) == 0
    out = capsys.readouterr().out
    assert "/workflows/ml-runs/" in out and "-training-abcde" in out
    request = argo_server.received[0]
    assert request["path"] == "/api/v1/workflows/ml-runs" and request["auth"] == "Bearer secret-token"
    arguments = {p["name"]: p.get("value") for p in request["body"]["workflow"]["spec"]["arguments"]["parameters"]}
    assert arguments["revision"] == "abc1234"
    assert json.loads(arguments["params-overrides"]) == {"train": {"seed": 7}}


@pytest.mark.parametrize(("status", "message"), [(401, "refused the credentials"), (409, "already exists")])
def test_submit_explains_a_refusal(argo_server, status: int, message: str, capsys) -> None:
    """401 and 409 from the server become a clear message and exit code 5."""
    argo_server.status = status
    assert main(["pipeline", "submit", "--revision", "abc1234"]) == EXIT_SUBMIT_FAILED
    assert message in capsys.readouterr().err


def test_submit_explains_an_unreachable_server(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """No server listening: a message naming ARGO_SERVER, exit code 5."""
    monkeypatch.chdir(PROJECT_ROOT)
    monkeypatch.setenv("ARGO_SERVER", "http://127.0.0.1:9")
    assert main(["pipeline", "submit", "--revision", "abc1234"]) == EXIT_SUBMIT_FAILED
    assert "cannot reach the Argo server" in capsys.readouterr().err


@pytest.mark.parametrize("revision", ["main", "$(touch x)", "abc1234;id", "ABC1234"])
def test_submit_refuses_a_revision_that_is_not_a_commit(argo_server, revision: str, capsys) -> None:
    """The revision becomes an image tag and a workflow parameter: anything but a hex commit id is exit 2, unsent."""
    assert main(["pipeline", "submit", "--revision", revision]) == 2
    assert "is not a git commit" in capsys.readouterr().err
    assert argo_server.received == []


def test_submit_needs_a_server(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """Without ARGO_SERVER the command says what to set."""
    monkeypatch.chdir(PROJECT_ROOT)
    monkeypatch.delenv("ARGO_SERVER", raising=False)
    assert main(["pipeline", "submit"]) == EXIT_BAD_INPUT
    assert "ARGO_SERVER is not set" in capsys.readouterr().err
