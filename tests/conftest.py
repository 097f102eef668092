"""Shared fixtures: render this working tree with copier, in isolation."""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

import copier
import pytest

from .releases import TemplateClone, make_template_clone

REPO_ROOT = Path(__file__).resolve().parents[1]
# The custom-resource schemas the template ships; generated projects carry theirs in deploy/schemas.
SCHEMAS = REPO_ROOT / "template" / "deploy" / "schemas"


# Pairwise over the answers that change output: remote kind, serving, monitoring,
# Python version, tracking URI, and custom names.
COMBINATIONS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "s3-deployment-nomonitoring-py312": {
        "dvc_remote": "s3",
        "serving_runtime": "deployment",
        "enable_monitoring": False,
        "python_version": "3.12",
        "mlflow_tracking_uri": "http://mlflow.mlops.svc:5000",
    },
    "local-kserve-nomonitoring-py310": {"enable_monitoring": False, "python_version": "3.10"},
    "s3-kserve-monitoring-py313": {"dvc_remote": "s3", "python_version": "3.13"},
    "custom-names-deployment": {
        "project_name": "Fraud Detector",
        "package_name": "fraud",
        "model_name": "fraud-model",
        "k8s_namespace": "risk",
        "serving_runtime": "deployment",
        "mlflow_tracking_uri": "https://mlflow.example.com",
    },
}


@pytest.fixture(autouse=True)
def _git_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Generated projects commit; give git an identity that does not depend on the machine."""
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "Template Tests")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "tests@example.com")


@pytest.fixture(scope="session")
def template_clone(tmp_path_factory: pytest.TempPathFactory) -> TemplateClone:
    """A clone of this repository with every release tagged and the working tree as the newest tag."""
    return make_template_clone(tmp_path_factory.mktemp("template") / "template")


# The runtime's source: beside a generated project's src/ on PYTHONPATH, its commands run without an install.
RUNTIME_SRC = REPO_ROOT / "runtime" / "src"


def project_pythonpath(root: Path) -> str:
    """PYTHONPATH that imports a generated project's package and the runtime of this working tree."""
    return os.pathsep.join([str(root / "src"), str(RUNTIME_SRC)])


# Generated projects install the runtime from this URL, as projects of the public template do; a git setting in
# this process's environment (inherited by uv, copier and make) maps it to a clone of the working tree.
RUNTIME_SOURCE = "https://github.com/OWNER/REPO.git"


def map_git_url(url: str, to: str) -> None:
    """`git config url.<to>.insteadOf <url>` for this process and what it starts, other such settings kept."""
    from plumbum import local

    count = int(os.environ.get("GIT_CONFIG_COUNT", "0"))
    settings = {f"GIT_CONFIG_KEY_{count}": f"url.{to}.insteadOf", f"GIT_CONFIG_VALUE_{count}": url}
    settings["GIT_CONFIG_COUNT"] = str(count + 1)
    os.environ.update(settings)
    # Copier runs its tasks in plumbum's copy of the environment, taken when plumbum was imported.
    for key, value in settings.items():
        local.env[key] = value


@functools.cache
def working_tree_clone() -> TemplateClone:
    """The working tree committed and tagged as the release in the making, once per test process: what projects
    are generated from, and where their runtime comes from (RUNTIME_SOURCE at that tag)."""
    folder = Path(tempfile.mkdtemp(prefix="template-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    clone = make_template_clone(folder / "template")
    map_git_url(RUNTIME_SOURCE, str(clone.path))
    return clone


@functools.cache
def runtime_over_http() -> dict[str, str]:
    """Build arguments that let `docker build --network host` fetch the runtime from the working tree's clone,
    served over git's dumb HTTP protocol on localhost for the rest of the test process."""
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    repository = working_tree_clone().path / ".git"
    subprocess.run(["git", "update-server-info"], cwd=repository, check=True)

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(repository)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    return {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": f"url.{url}.insteadOf", "GIT_CONFIG_VALUE_0": RUNTIME_SOURCE}


def generate(dst: Path, remote: Path | None = None, *, tasks: bool = False, **answers: Any) -> Path:
    """Render the working tree (uncommitted changes included) into `dst` with default answers.

    A local DVC remote goes to `remote` (outside the project) unless the answers choose S3.
    """
    data = dict(answers)
    if data.get("dvc_remote", "local") == "local":
        data.setdefault("dvc_remote_url", str(remote or dst.parent / f"{dst.name}-remote"))
    data.setdefault("runtime_source", RUNTIME_SOURCE)
    copier.run_copy(
        str(working_tree_clone().path),
        str(dst),
        data=data,
        defaults=True,
        unsafe=True,
        vcs_ref="HEAD",
        quiet=True,
        skip_tasks=not tasks,
    )
    return dst


def project_files(root: Path) -> set[str]:
    """Every file below `root`, as POSIX paths, outside .git."""
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and ".git" not in p.parts}


def run(cmd: list[str], cwd: Path, timeout: int = 900, env: dict[str, str] | None = None) -> str:
    """Run a command; on failure show its output in the assertion."""
    done = subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )
    output = f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    assert done.returncode == 0, f"{' '.join(cmd)} failed ({done.returncode}):\n{output}"
    return done.stdout
