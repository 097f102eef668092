"""The `run:` steps of a generated project's ci.yml, run in order in a checkout on this machine.

Steps that need GitHub (NEEDS_GITHUB) are skipped by name, and so is any step the
caller names in `skip` (reported as skipped, never as passed). The first step that
fails ends the run, as it ends a job on GitHub.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

# Steps that need GitHub or the network, skipped by name.
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


def expand(value: object, expressions: Mapping[str, str] = EXPRESSIONS) -> str:
    """A step's env value with its `${{ }}` expressions replaced; an unknown one fails by name."""

    def lookup(match: re.Match[str]) -> str:
        expression = match.group(1).strip()
        assert expression in expressions, f"the harness does not know ${{{{ {expression} }}}}"
        return expressions[expression]

    return re.sub(r"\$\{\{(.*?)\}\}", lookup, str(value))


def step_name(step: dict) -> str:
    return step.get("name") or step["uses"].split("@")[0]


@dataclass
class CIRun:
    """What one run of ci.yml did: steps run (in order), skipped, and the one that failed with its output."""

    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: str | None = None
    output: str = ""

    @property
    def passed(self) -> bool:
        return self.failed is None


def run_ci(
    work: Path,
    scratch: Path,
    expressions: Mapping[str, str] = EXPRESSIONS,
    skip: frozenset[str] = frozenset(),
    env: Mapping[str, str] | None = None,
) -> CIRun:
    """Run every shell step of `work`'s .github/workflows/ci.yml in `work`; stop at the first failure.

    `scratch` holds the runner's temp folder and the GITHUB_ENV/GITHUB_OUTPUT files.
    """
    flow = yaml.safe_load((work / ".github/workflows/ci.yml").read_text())
    runner_temp, github_env = scratch / "runner-temp", scratch / "github-env"
    runner_temp.mkdir(parents=True, exist_ok=True)
    github_env.write_text("")
    base_env = {
        **os.environ,
        **{k: expand(v, expressions) for k, v in flow.get("env", {}).items()},
        "RUNNER_TEMP": str(runner_temp),
        "GITHUB_ENV": str(github_env),
        "GITHUB_OUTPUT": str(scratch / "github-output"),
        # This machine has the project's Python; one OpenMP thread beside the other test worker.
        "UV_PYTHON_DOWNLOADS": "never",
        "OMP_NUM_THREADS": "1",
        **(env or {}),
    }
    result = CIRun()
    for job_name, job in flow["jobs"].items():
        job_env = {k: expand(v, expressions) for k, v in job.get("env", {}).items()}
        for step in job["steps"]:
            name = step_name(step)
            if "run" not in step or name in NEEDS_GITHUB or name in skip:
                result.skipped.append(name)
                continue
            step_env = {**base_env, **job_env, **{k: expand(v, expressions) for k, v in step.get("env", {}).items()}}
            done = subprocess.run(
                ["bash", "-e", "-o", "pipefail", "-c", step["run"]],
                cwd=work,
                env=step_env,
                capture_output=True,
                text=True,
                timeout=1800,
            )
            if done.returncode != 0:
                result.failed = f"{job_name} / {name}"
                result.output = f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
                return result
            result.ran.append(name)
    return result
