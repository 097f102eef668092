"""Slow: the default project's image, built with Docker and run as its pods run it.

One image serves every test (a session fixture). Where the Dockerfile's base images cannot be pulled,
tests/docker_engine.py bootstraps stand-ins from Debian 12, whose Python is 3.11: these tests cover the
default `python_version` ("3.11") only.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import generate, run, runtime_over_http
from .docker_engine import Engine, docker_engine, dockerfile_defaults, python_base, uv_image

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("image")]

# Where KServe's storage initializer puts the files of the InferenceService's storageUri.
KSERVE_MODEL_DIR = "/mnt/models"


@dataclass(frozen=True)
class Built:
    root: Path
    image: str
    package: str
    engine: Engine
    build_args: dict[str, str]

    def overlay(self, env: str = "dev") -> list[dict[str, Any]]:
        """The rendered overlay of an environment, as Argo CD applies it."""
        out = run(["kubectl", "kustomize", str(self.root / "deploy/overlays" / env)], cwd=self.root)
        return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    with docker_engine(tmp_path_factory.mktemp("docker")) as started:
        yield started


@pytest.fixture(scope="session")
def built(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The default project, trained on the host, and its image built by `make image`."""
    base = tmp_path_factory.mktemp("image-project")
    with pytest.MonkeyPatch.context() as patch:
        for role in ("AUTHOR", "COMMITTER"):
            patch.setenv(f"GIT_{role}_NAME", "Template Tests")
            patch.setenv(f"GIT_{role}_EMAIL", "tests@example.com")
        root = generate(base / "project", base / "remote", tasks=True)
    answers = yaml.safe_load((root / ".copier-answers.yml").read_text())
    env = {"MLFLOW_TRACKING_URI": "", "OMP_NUM_THREADS": "1", "PATH": f"{root / '.venv/bin'}:{os.environ['PATH']}"}
    run(["make", "setup"], cwd=root, env=env)
    run(["dvc", "repro", "--quiet", "train"], cwd=root, env=env)
    defaults = dockerfile_defaults(root / "Dockerfile")
    build_args = {
        "PYTHON_IMAGE": python_base(engine, defaults["PYTHON_IMAGE"], str(answers["python_version"]), base),
        "UV_IMAGE": uv_image(engine, defaults["UV_IMAGE"], base),
    }
    # The runtime comes from the working tree's clone, as it would from the template's repository.
    git_args = runtime_over_http()
    image = f"{answers['project_slug']}:test"
    options = " ".join(["--network host", *(f"--build-arg {name}={value}" for name, value in git_args.items())])
    run(
        ["make", "image"],
        cwd=root,
        env={**env, **engine.env, **build_args, "IMAGE": image, "DOCKER_BUILD_OPTIONS": options},
        timeout=1800,
    )
    build_args |= git_args
    return Built(root, image, answers["package_name"], engine, build_args)


def test_build_refuses_without_a_lock_and_with_a_stale_one(built: Built, tmp_path: Path) -> None:
    """No uv.lock: the build stops saying how to make one. A lock behind pyproject.toml: uv's --locked stops it."""
    context = tmp_path / "context"
    shutil.copytree(built.root, context, ignore=shutil.ignore_patterns(".venv", ".git", "data", "mlruns", "models"))
    args = [f"--build-arg={name}={value}" for name, value in built.build_args.items()]
    (context / "uv.lock").unlink()
    done = built.engine.docker("build", "--network=host", *args, str(context), check=False)
    assert done.returncode != 0
    assert "uv.lock is missing" in done.stdout + done.stderr and "make setup" in done.stdout + done.stderr

    shutil.copy(built.root / "uv.lock", context / "uv.lock")
    pyproject = context / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("dependencies = [", 'dependencies = [\n    "six>=1.16",', 1))
    done = built.engine.docker("build", "--network=host", *args, str(context), check=False)
    assert done.returncode != 0
    assert "uv lock" in done.stdout + done.stderr, done.stdout[-2000:] + done.stderr[-2000:]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def find(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(doc for doc in docs if doc["kind"] == kind)


def memory_bytes(quantity: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    return int(quantity[:-2]) * units[quantity[-2:]] if quantity[-2:] in units else int(quantity)


def pod_options(pod_security: dict[str, Any], container: dict[str, Any], resources: dict[str, Any]) -> list[str]:
    """`docker run` options for what the pod spec asks: user, read-only root, emptyDirs, capabilities, limits."""
    options = ["--network=host", f"--user={pod_security['runAsUser']}:{pod_security['runAsGroup']}"]
    context = container.get("securityContext", {})
    if context.get("readOnlyRootFilesystem"):
        options.append("--read-only")
    if context.get("allowPrivilegeEscalation") is False:
        options.append("--security-opt=no-new-privileges")
    options += [f"--cap-drop={cap}" for cap in context.get("capabilities", {}).get("drop", [])]
    # The pods' volumes are emptyDirs: writable, owned by fsGroup.
    options += [f"--tmpfs={mount['mountPath']}:rw,mode=1777" for mount in container.get("volumeMounts", [])]
    limits = resources["limits"]
    options += [f"--cpus={limits['cpu']}", f"--memory={memory_bytes(limits['memory'])}"]
    options += [f"--env={item['name']}={item['value']}" for item in container.get("env", []) if "value" in item]
    return options


def kserve_model_dir(built: Built, where: Path) -> Path:
    """The trained model's files as KServe's storage initializer leaves them: written by the pod's user."""
    shutil.copytree(built.root / "models/model", where)
    uid = int(find(built.overlay(), "InferenceService")["spec"]["predictor"]["securityContext"]["runAsUser"])
    for path in [where, *where.rglob("*")]:
        os.chown(path, uid, uid)
    return where


def writable_by(folder: Path, uid: int) -> Path:
    folder.mkdir(parents=True)
    os.chown(folder, uid, uid)
    return folder


def request(url: str, body: bytes | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, body, {"content-type": "application/json"}), timeout=30
        ) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def v2_body(built: Built, rows: int) -> tuple[dict[str, Any], list[int]]:
    """A V2 request of the first held-out rows, and the model's own predictions for them (in the project's venv)."""
    script = f"""
import json, mlflow, pandas as pd
from mlops_runtime.config import load_params
params = load_params()
frame = pd.read_parquet(params.paths.test)[params.data.features].dropna().head({rows})
model = mlflow.pyfunc.load_model("models/model")
inputs = []
for name in frame.columns:
    column = frame[name]
    numeric = column.dtype.kind in "fi"
    inputs.append({{"name": name, "shape": [len(column)], "datatype": "FP64" if numeric else "BYTES",
                   "data": column.astype(float).tolist() if numeric else column.astype(str).tolist()}})
print(json.dumps({{"body": {{"inputs": inputs}}, "expected": [int(p) for p in model.predict(frame)]}}))
"""
    out = run([str(built.root / ".venv/bin/python"), "-c", script], cwd=built.root)
    answer = json.loads(out.strip().splitlines()[-1])
    return answer["body"], answer["expected"]


@dataclass
class Server:
    name: str
    url: str
    log_folder: Path

    def logs(self, built: Built) -> str:
        done = built.engine.docker("logs", self.name, check=False)
        return done.stdout + done.stderr


def start_server(built: Built, work: Path, name: str, env: str = "dev") -> Server:
    """The model server container as the overlay's InferenceService runs it (kserve runtime)."""
    docs = built.overlay(env)
    runtime, service = find(docs, "ServingRuntime"), find(docs, "InferenceService")
    container = runtime["spec"]["containers"][0]
    predictor = service["spec"]["predictor"]
    pod_security = predictor["securityContext"]
    port = free_port()
    args = list(container["args"])
    # Host networking: the pod's port may be taken on this machine.
    args[args.index("--port") + 1] = str(port)
    model = kserve_model_dir(built, work / "model")
    log_folder = writable_by(work / "inputs", int(pod_security["runAsUser"]))
    built.engine.docker(
        "run", "--detach", f"--name={name}",
        *pod_options(pod_security, container, predictor["model"].get("resources", container["resources"])),
        f"--volume={model}:{KSERVE_MODEL_DIR}:ro",
        # The input log folder (serve.log_inputs) on a volume, as the root file system is read-only.
        f"--volume={log_folder}:/app/data/inference/inputs",
        built.image, *container["command"], *args,
    )  # fmt: skip
    server = Server(name, f"http://127.0.0.1:{port}", log_folder)
    deadline = time.monotonic() + 240
    while True:
        try:
            if request(f"{server.url}/v2/health/ready")[0] == 200:
                return server
        except OSError:
            pass
        state = built.engine.docker("inspect", "--format", "{{.State.Running}}", name).stdout.strip()
        if state != "true" or time.monotonic() > deadline:
            raise AssertionError(f"the server never got ready:\n{server.logs(built)[-3000:]}")
        time.sleep(1)


@pytest.fixture
def container_names(built: Built) -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for name in names:
        built.engine.docker("rm", "--force", name, check=False)


def test_server_runs_as_its_pod_and_answers_v2(built: Built, tmp_path: Path, container_names: list[str]) -> None:
    """As the dev InferenceService runs it (UID, read-only root, no capabilities, limits): ready, infer, 1 worker."""
    container_names.append("server-dev")
    server = start_server(built, tmp_path, "server-dev")
    body, expected = v2_body(built, 50)
    model = find(built.overlay(), "InferenceService")["metadata"]["name"]
    status, answer = request(f"{server.url}/v2/models/{model}/infer", json.dumps(body).encode())
    assert status == 200, answer
    assert json.loads(answer)["outputs"][0]["data"] == expected
    # The dev overlay's CPU limit is 1, on a cgroup v1 or v2 host alike.
    assert "1 worker(s)" in server.logs(built)
    built.engine.docker("stop", "--time=30", server.name)
    logs = server.logs(built)
    assert "stopped serving" in logs and "Traceback" not in logs, logs[-3000:]
    assert logged_rows(built, server.log_folder) == 50


def logged_rows(built: Built, folder: Path) -> int:
    count = f"import pandas as pd; print(len(pd.read_parquet({str(folder)!r})))"
    return int(run([str(built.root / ".venv/bin/python"), "-c", count], cwd=built.root))


@pytest.mark.parametrize(
    ("limit", "fake", "expected"),
    [
        ("--cpus=1", None, 1),
        (None, "100000 100000", 1),
        (None, "max 100000", len(os.sched_getaffinity(0))),
    ],
    ids=["cgroup-v1-1-cpu", "cgroup-v2-1-cpu", "cgroup-v2-no-limit"],
)
def test_worker_count_follows_the_cpu_limit_in_the_container(
    built: Built, tmp_path: Path, limit: str | None, fake: str | None, expected: int
) -> None:
    """The CPUs `serve.workers: 0` counts in the image: a CPU limit under cgroup v1 (docker --cpus on this host's
    cgroup version) and under cgroup v2 (a fake cpu.max where /sys/fs/cgroup is)."""
    options = [limit] if limit else []
    if fake is not None:
        (tmp_path / "cpu.max").write_text(fake + "\n")
        # Readable by the image's user, as the real files are.
        tmp_path.chmod(0o755)
        (tmp_path / "cpu.max").chmod(0o644)
        options.append(f"--volume={tmp_path}:/sys/fs/cgroup:ro")
    script = "from mlops_runtime.serving.cpus import available_cpus; print(available_cpus())"
    done = built.engine.docker(
        "run", "--rm", "--read-only", "--user=10001", *options, built.image, "python", "-c", script
    )
    assert int(done.stdout.strip()) == expected


def kubelet_expand(args: list[str], env: list[dict[str, Any]]) -> list[str]:
    """`$(NAME)` in a container's arguments replaced by the value of its env entry NAME, as the kubelet does
    (`$$` escapes; a name without a value stays as written)."""
    values = {item["name"]: item["value"] for item in env if "value" in item}

    def one(match: re.Match[str]) -> str:
        return "$" if match[0] == "$$" else values.get(match[1], match[0])

    return [re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)", one, arg) for arg in args]


class _Pushgateway(BaseHTTPRequestHandler):
    pushed: list[tuple[str, bytes]] = []

    def do_PUT(self) -> None:  # noqa: N802
        self.pushed.append((self.path, self.rfile.read(int(self.headers.get("content-length", 0)))))
        self.send_response(200)
        self.end_headers()

    do_POST = do_PUT  # noqa: N815

    def log_message(self, *args: Any) -> None:
        pass


def test_drift_job_command_runs_against_a_log_folder(built: Built, tmp_path: Path, container_names: list[str]) -> None:
    """The dev CronJob's container (command, args, env) in the image, on the rows a served pod logged."""
    container_names.append("server-for-drift")
    server = start_server(built, tmp_path / "serve", "server-for-drift")
    body, _ = v2_body(built, 300)
    model = find(built.overlay(), "InferenceService")["metadata"]["name"]
    assert request(f"{server.url}/v2/models/{model}/infer", json.dumps(body).encode())[0] == 200
    built.engine.docker("stop", "--time=30", server.name)

    gateway = ThreadingHTTPServer(("127.0.0.1", 0), _Pushgateway)
    threading.Thread(target=gateway.serve_forever, daemon=True).start()
    try:
        cronjob = find(built.overlay(), "CronJob")
        pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        container = pod["containers"][0]
        # The values a cluster gives: the model folder as reference, the logged rows, a reachable Pushgateway.
        overrides = {
            "MODEL_REFERENCE": KSERVE_MODEL_DIR,
            "CURRENT_URI": "/logs",
            "PUSHGATEWAY_URL": f"http://127.0.0.1:{gateway.server_port}",
            "NAMESPACE": "dev",
        }
        container = {**container, "env": [
            {"name": item["name"], "value": overrides.get(item["name"], item.get("value"))}
            for item in container["env"] if "value" in item or item["name"] in overrides
        ]}  # fmt: skip
        model = kserve_model_dir(built, tmp_path / "model")
        done = built.engine.docker(
            "run", "--rm", *pod_options(pod["securityContext"], container, container["resources"]),
            f"--volume={model}:{KSERVE_MODEL_DIR}:ro", f"--volume={server.log_folder}:/logs:ro",
            built.image, *container["command"], *kubelet_expand(container["args"], container["env"]),
            check=False,
        )  # fmt: skip
    finally:
        gateway.shutdown()
        gateway.server_close()
    assert done.returncode == 0, done.stdout + done.stderr
    # The figures reached the Pushgateway, grouped by the namespace the pod runs in.
    assert _Pushgateway.pushed and "/namespace/dev" in _Pushgateway.pushed[-1][0], _Pushgateway.pushed


@dataclass
class Answered:
    sent: float
    status: int | str


def keep_alive_load(url: str, path: str, body: bytes, answered: list[Answered], stop: threading.Event) -> None:
    """V2 infer requests one after another on a kept-alive connection (a new one after a failure), each
    recorded with when it was sent and its status, or the error that cut it off."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    while not stop.is_set():
        sent = time.monotonic()
        try:
            connection.request("POST", path, body, {"content-type": "application/json"})
            response = connection.getresponse()
            response.read()
            answered.append(Answered(sent, response.status))
        except (OSError, http.client.HTTPException) as exc:
            answered.append(Answered(sent, type(exc).__name__))
            connection.close()
            time.sleep(0.05)  # the server is gone: do not spin
    connection.close()


def test_docker_stop_drains_under_load(built: Built, tmp_path: Path, container_names: list[str]) -> None:
    """`docker stop` (SIGTERM) under keep-alive load: readiness turns 503 at once, every request sent during
    serve.drain_seconds gets a 200, the container exits 0/143 within the pod's grace period, and every
    answered row is in the input log on the mounted folder."""
    container_names.append("server-drain")
    server = start_server(built, tmp_path, "server-drain")
    body, _ = v2_body(built, 3)
    model = find(built.overlay(), "InferenceService")["metadata"]["name"]
    drain_seconds = float(yaml.safe_load((built.root / "params.yaml").read_text())["serve"]["drain_seconds"])
    grace = int(find(built.overlay(), "InferenceService")["spec"]["predictor"]["terminationGracePeriodSeconds"])
    answered: list[Answered] = []
    stop = threading.Event()
    clients = [
        threading.Thread(
            target=keep_alive_load,
            args=(server.url, f"/v2/models/{model}/infer", json.dumps(body).encode(), answered, stop),
        )
        for _ in range(3)
    ]
    for client in clients:
        client.start()
    try:
        time.sleep(2)
        assert any(a.status == 200 for a in answered), answered[-5:]
        stopper = threading.Thread(target=built.engine.docker, args=("stop", f"--time={grace}", server.name))
        signalled = time.monotonic()
        stopper.start()
        time.sleep(0.5)
        ready = request(f"{server.url}/v2/health/ready")[0]
        stopper.join(timeout=grace + 30)
        stopped = time.monotonic() - signalled
    finally:
        stop.set()
        for client in clients:
            client.join(timeout=60)
    state = json.loads(built.engine.docker("inspect", "--format", "{{json .State}}", server.name).stdout)
    logs = server.logs(built)
    assert ready == 503, logs[-3000:]
    # Sent before the drain ended: answered, none refused or cut off.
    during = [a for a in answered if a.sent >= signalled and a.sent < signalled + drain_seconds]
    assert during and all(a.status == 200 for a in during), [a for a in during if a.status != 200][:5]
    assert all(a.status == 200 for a in answered if a.sent < signalled + drain_seconds)
    assert state["ExitCode"] in (0, 143) and not state["OOMKilled"], (state, logs[-3000:])
    assert drain_seconds <= stopped < grace, (stopped, logs[-3000:])
    assert f"draining for {drain_seconds:g} s" in logs and "stopped serving" in logs, logs[-3000:]
    assert "Traceback" not in logs, logs[-3000:]
    rows = 3 * sum(1 for a in answered if a.status == 200)
    assert logged_rows(built, server.log_folder) == rows


def run_local_in_image(built: Built, workdir: Path, workflow: str = "training") -> subprocess.CompletedProcess[str]:
    """`pipeline run-local --image` of the project's image, from the project's own environment."""
    env = {**built.engine.env, "MLFLOW_TRACKING_URI": "", "PATH": f"{built.root / '.venv/bin'}:{os.environ['PATH']}"}
    command = ["python", "-m", built.package, "pipeline", "run-local", "--workflow", workflow]
    return subprocess.run(
        [*command, "--image", built.image, "--workdir", str(workdir)],
        cwd=built.root, env=env, capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip


def test_run_local_runs_every_training_task_in_the_image(built: Built, tmp_path: Path) -> None:
    """Every task of the rendered training workflow in the image, as its pod: a model registered in the run's store,
    and the outputs written by the pod's user (not this process's)."""
    env = {"PATH": f"{built.root / '.venv/bin'}:{os.environ['PATH']}"}
    run(["make", "render"], cwd=built.root, env=env)
    run(["dvc", "push", "--quiet"], cwd=built.root, env=env)
    workdir = tmp_path / "run"
    done = run_local_in_image(built, workdir)
    assert done.returncode == 0, done.stdout + done.stderr
    tasks = ["data-raw", "ingest", "validate", "featurize", "train", "evaluate", "register"]
    phases = {line.split()[0]: line.split()[2] for line in done.stdout.splitlines() if line.startswith("  ")}
    assert {task: phases.get(task) for task in tasks} == dict.fromkeys(tasks, "Succeeded"), done.stdout
    uid = yaml.safe_load((built.root / "pipelines/training.yaml").read_text())["spec"]["securityContext"]["runAsUser"]
    assert uid != os.geteuid()
    for written in (workdir / "data-raw/data/raw", workdir / "train/models/model_info.json"):
        assert written.stat().st_uid == uid, written
    store = f"sqlite:///{workdir / 'mlflow/mlflow.db'}"
    script = f"""
from mlflow import MlflowClient
from mlops_runtime.config import load_params
name = load_params().registry.model_name
print(len(MlflowClient(tracking_uri={store!r}).search_model_versions(f"name='{{name}}'")))
"""
    assert run([str(built.root / ".venv/bin/python"), "-c", script], cwd=built.root).strip().splitlines()[-1] == "1"


def test_run_local_in_the_image_names_the_failed_task(built: Built, tmp_path: Path) -> None:
    """A task whose command fails in the container stops the run with a non-zero exit naming it and the image."""
    run(["make", "render"], cwd=built.root, env={"PATH": f"{built.root / '.venv/bin'}:{os.environ['PATH']}"})
    workflow = built.root / "pipelines/broken.yaml"
    text = (built.root / "pipelines/training.yaml").read_text()
    workflow.write_text(text.replace("- data/raw.dvc\n", "- data/missing.dvc\n", 1))
    try:
        done = run_local_in_image(built, tmp_path / "run", "broken")
    finally:
        workflow.unlink()
    assert done.returncode == 14, done.stdout + done.stderr
    assert "task data-raw failed" in done.stderr and f"in {built.image} exited" in done.stderr, done.stderr
