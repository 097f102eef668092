"""Slow: the `run:` steps of the generated ci.yml, in order, against a fresh project on this machine."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from .conftest import generate, run

pytestmark = pytest.mark.slow

# Steps that need GitHub or the network, skipped by name; any other skipped step fails the test.
NEEDS_GITHUB = {
    "actions/checkout": "clones from GitHub: the harness clones the project instead",
    "astral-sh/setup-uv": "installs uv on the runner: uv is on this machine",
    "Cloud credentials (OIDC)": "needs GitHub's OIDC token",
    "actions/upload-artifact": "stores on GitHub",
    "actions/download-artifact": "reads from GitHub",
    "marocchino/sticky-pull-request-comment": "posts to the pull request",
}
# What the expressions of ci.yml stand for on a pull request into main; nothing is configured.
EXPRESSIONS = {
    "github.base_ref": "main",
    "vars.MLFLOW_TRACKING_URI": "",
    "secrets.MLFLOW_READ_TOKEN": "",
}


def expand(value: str) -> str:
    """A step's env value with its `${{ }}` expressions replaced; an unknown one fails the test by name."""

    def lookup(match: re.Match[str]) -> str:
        expression = match.group(1).strip()
        assert expression in EXPRESSIONS, f"the harness does not know ${{{{ {expression} }}}}"
        return EXPRESSIONS[expression]

    return re.sub(r"\$\{\{(.*?)\}\}", lookup, str(value))


def step_name(step: dict) -> str:
    return step.get("name") or step["uses"].split("@")[0]


def test_ci_run_steps_pass_on_a_fresh_project(tmp_path: Path) -> None:
    """Every shell step of ci.yml passes in order on a pull request branch; the GitHub-only steps are the known ones."""
    origin = generate(tmp_path / "origin", tmp_path / "remote", tasks=True)
    work = tmp_path / "work"  # what actions/checkout gives: a clone, with origin/main to compare with
    run(["git", "clone", "--quiet", str(origin), str(work)], cwd=tmp_path)
    run(["git", "switch", "--quiet", "-c", "change"], cwd=work)
    flow = yaml.safe_load((work / ".github/workflows/ci.yml").read_text())
    runner_temp, github_env = tmp_path / "runner-temp", tmp_path / "github-env"
    runner_temp.mkdir()
    github_env.write_text("")
    base_env = {
        **os.environ,
        **{k: expand(v) for k, v in flow.get("env", {}).items()},
        "RUNNER_TEMP": str(runner_temp),
        "GITHUB_ENV": str(github_env),
        "GITHUB_OUTPUT": str(tmp_path / "github-output"),
        # This machine has the project's Python; one OpenMP thread beside the other test worker.
        "UV_PYTHON_DOWNLOADS": "never",
        "OMP_NUM_THREADS": "1",
    }
    ran, skipped = [], []
    for job_name, job in flow["jobs"].items():
        job_env = {k: expand(v) for k, v in job.get("env", {}).items()}
        for step in job["steps"]:
            name = step_name(step)
            if "run" not in step or name in NEEDS_GITHUB:
                skipped.append(name)
                continue
            env = {**base_env, **job_env, **{k: expand(v) for k, v in step.get("env", {}).items()}}
            done = subprocess.run(
                ["bash", "-e", "-o", "pipefail", "-c", step["run"]],
                cwd=work,
                env=env,
                capture_output=True,
                text=True,
                timeout=1800,
            )
            assert done.returncode == 0, f"{job_name} / {name} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            ran.append(name)

    assert set(skipped) == set(NEEDS_GITHUB), "a step was skipped that the harness does not list, or vice versa"
    assert ran == [
        "Install",
        "Lint",
        "Tests",
        "Data (dvc pull)",
        "Pipeline on the PR's data (dvc repro)",
        "Argo workflows render and match the committed YAML",
        "Kubernetes manifests build and validate",
        "Promotion gates on changed pin files",
        "Metrics of this change against prod",
    ]
    comment = (work / "comment/metrics.md").read_text()
    assert "this change vs `prod`" in comment and "| roc_auc | >= 0.75 |" in comment
