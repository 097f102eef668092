"""The generated template-update workflow: pinned, least privilege, and its update step run here for real."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import generate, run
from .releases import TemplateClone, changelog_releases
from .test_update import commit, copy_release

WORKFLOW = ".github/workflows/template-update.yml"
OLDEST = min(changelog_releases())


@pytest.fixture(scope="module")
def workflow(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    dst = generate(tmp_path_factory.mktemp("workflow") / "project")
    return dst / WORKFLOW, yaml.safe_load((dst / WORKFLOW).read_text())


def steps(workflow: dict) -> list[dict]:
    return workflow["jobs"]["update"]["steps"]


def test_runs_weekly_and_by_hand(workflow: tuple[Path, dict]) -> None:
    """A weekly schedule and a manual trigger; nothing else starts it."""
    _, flow = workflow
    triggers = flow[True]  # YAML 1.1 reads the key `on` as a boolean
    assert set(triggers) == {"schedule", "workflow_dispatch"}
    minute, hour, day, month, weekday = triggers["schedule"][0]["cron"].split()
    assert (day, month) == ("*", "*") and weekday.isdigit()


def test_least_privilege_and_pinned_actions(workflow: tuple[Path, dict]) -> None:
    """No default permissions, read-only job token, actions pinned by commit with a version comment."""
    path, flow = workflow
    assert flow["permissions"] == {}
    assert flow["jobs"]["update"]["permissions"] == {"contents": "read"}
    uses = re.findall(r"uses: (\S+)(.*)", path.read_text())
    assert {u.split("@")[0] for u, _ in uses} >= {"actions/checkout", "peter-evans/create-pull-request"}
    for action, comment in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", action), action
        assert re.fullmatch(r" # v\d+\.\d+\.\d+", comment), (action, comment)
    checkout = next(s for s in steps(flow) if s.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["persist-credentials"] is False


def test_inputs_reach_shells_only_through_env(workflow: tuple[Path, dict]) -> None:
    """No `${{ }}` expression is pasted into a shell script."""
    _, flow = workflow
    for step in steps(flow):
        assert "${{" not in step.get("run", ""), step.get("name")


def test_one_pull_request_with_a_token_that_triggers_ci(workflow: tuple[Path, dict]) -> None:
    """A fixed branch (so one PR is refreshed), pushed with the App or personal token, never the default one."""
    _, flow = workflow
    pr = next(s for s in steps(flow) if s.get("uses", "").startswith("peter-evans/create-pull-request@"))
    assert pr["with"]["branch"] == "template-update"
    assert "secrets.GITHUB_TOKEN" not in pr["with"]["token"] and "TEMPLATE_UPDATE" in pr["with"]["token"]
    assert pr["with"]["body-path"].endswith("pr-body.md")


def test_zizmor_finds_nothing(workflow: tuple[Path, dict]) -> None:
    """The security audit of GitHub Actions (offline) reports no finding."""
    path, _ = workflow
    zizmor = shutil.which("zizmor", path=os.path.dirname(sys.executable))
    assert zizmor, "zizmor is a dev dependency: run make setup"
    done = subprocess.run([zizmor, "--offline", "--no-progress", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def run_update_step(flow: dict, project: Path, tmp_path: Path) -> tuple[dict[str, str], str]:
    """Run the workflow's update step here, as the runner would: its outputs and the pull request body."""
    script = next(s for s in steps(flow) if s.get("id") == "update")["run"]
    output, runner_temp = tmp_path / "github-output", tmp_path / "runner-temp"
    runner_temp.mkdir(exist_ok=True)
    output.write_text("")
    env = {
        **os.environ,
        "GITHUB_OUTPUT": str(output),
        "RUNNER_TEMP": str(runner_temp),
        "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}",
    }
    done = subprocess.run(
        ["bash", "-eo", "pipefail", "-c", script], cwd=project, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines())
    body = runner_temp / "pr-body.md"
    return outputs, body.read_text() if body.exists() else ""


def test_update_step_lists_conflicts_and_stops_when_current(
    workflow: tuple[Path, dict], template_clone: TemplateClone, tmp_path: Path
) -> None:
    """From an old release the step updates and names the conflicted file; once current it asks for no PR."""
    _, flow = workflow
    project = copy_release(template_clone, template_clone.tag(OLDEST), tmp_path / "project", tmp_path / "remote")
    makefile = project / "Makefile"
    makefile.write_text(makefile.read_text().replace("lint: setup ## Lint", "lint: setup ## Our lint", 1))
    commit(project, "Own wording of the lint target")

    outputs, body = run_update_step(flow, project, tmp_path)

    assert outputs == {"newer": "true", "version": template_clone.newest, "draft": "true"}
    assert f"from template release `v{OLDEST}` to `{template_clone.newest}`" in body
    assert "- `Makefile`" in body
    staged = run(["git", "diff", "--cached", "--name-only"], cwd=project).split()  # staged for the pull request
    # The runtime came with the update: the lock follows pyproject.toml in the same pull request.
    assert "pyproject.toml" in staged and "uv.lock" in staged, staged
    assert "uv.lock is not updated" not in body
    assert "mlops-runtime" in (project / "uv.lock").read_text()

    commit(project, "Template update")
    outputs, _ = run_update_step(flow, project, tmp_path)
    assert outputs == {"newer": "false"}
