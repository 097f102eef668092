"""Update to 0.3.0: the rendered Argo drift workflow goes with its module; a hand-edited one stays, named."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import REPO_ROOT, project_pythonpath, run
from .releases import TemplateClone
from .test_update import commit, copy_release, update

MODULE = "template/pipelines/{% if enable_monitoring %}monitoring.py{% endif %}.jinja"
MIGRATION = REPO_ROOT / "hooks" / "migrate_drift_job.py"
RENDERED = "pipelines/monitoring.yaml"
# In the project at the older template: `make render` without installing it (the template's tools have Hera).
RENDER = """
from pathlib import Path
from {package}.argo.render import render, workflows
render(workflows(Path(".")), Path("pipelines"))
"""


def last_commit_with_the_workflow() -> str:
    """The newest commit of this repository whose template still has pipelines/monitoring.py."""
    touched = run(["git", "rev-list", "-1", "HEAD", "--", MODULE], cwd=REPO_ROOT).strip()
    has_it = subprocess.run(["git", "cat-file", "-e", f"{touched}:{MODULE}"], cwd=REPO_ROOT).returncode == 0
    return touched if has_it else run(["git", "rev-parse", f"{touched}^"], cwd=REPO_ROOT).strip()


def rendered_project(clone: TemplateClone, tmp_path: Path, **answers: object) -> Path:
    """A project from before the change, its workflows rendered by `make render` and committed."""
    project = copy_release(clone, last_commit_with_the_workflow(), tmp_path / "project", tmp_path / "remote", **answers)
    package = yaml.safe_load((project / ".copier-answers.yml").read_text())["package_name"]
    environ = {**os.environ, "PYTHONPATH": project_pythonpath(project)}
    done = subprocess.run(
        [sys.executable, "-c", RENDER.format(package=package)], cwd=project, env=environ, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    commit(project, "Render the workflows")
    return project


def test_rendered_drift_workflow_is_deleted_with_its_module(
    template_clone: TemplateClone, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The update removes pipelines/monitoring.py (template) and monitoring.yaml (migration), and says so."""
    project = rendered_project(template_clone, tmp_path)
    assert (project / RENDERED).is_file() and (project / "pipelines/monitoring.py").is_file()
    capfd.readouterr()

    update(project)

    assert not (project / RENDERED).exists() and not (project / "pipelines/monitoring.py").exists()
    assert (project / "pipelines/training.yaml").is_file() and (project / "pipelines/training.py").is_file()
    said = capfd.readouterr()
    assert f"deleted {RENDERED}, the rendered Argo drift workflow" in said.out + said.err
    assert "deploy/overlays/<env>/thresholds.yaml" in said.out + said.err
    # The drift job is the CronJob, driven by each overlay; params.yaml lost the keys only the workflow read.
    monitor = yaml.safe_load((project / "params.yaml").read_text())["monitor"]
    assert not {"schedule", "current", "pushgateway"} & set(monitor)
    assert yaml.safe_load((project / "deploy/overlays/dev/thresholds.yaml").read_text())["spec"]["driftSchedule"]


def test_hand_edited_drift_workflow_is_kept_and_named(
    template_clone: TemplateClone, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A monitoring.yaml that is not what the module renders (here its schedule) is kept, with what to do."""
    project = rendered_project(template_clone, tmp_path)
    path = project / RENDERED
    text = path.read_text()
    assert "- 0 6 * * *" in text
    path.write_text(text.replace("- 0 6 * * *", "- 30 1 * * *", 1))
    commit(project, "Check drift earlier")
    capfd.readouterr()

    update(project)

    assert path.read_text() == text.replace("- 0 6 * * *", "- 30 1 * * *", 1)
    said = capfd.readouterr()
    message = said.out + said.err
    assert f"kept {RENDERED}" in message and "its schedule ['30 1 * * *'] is not monitor.schedule" in message
    assert f"then delete {RENDERED}" in message


def test_nothing_to_do_without_the_file(tmp_path: Path) -> None:
    """Without monitoring (or once deleted) the migration changes nothing and says nothing: safe to rerun."""
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines/training.yaml").write_text("kind: WorkflowTemplate\n")
    done = subprocess.run([sys.executable, str(MIGRATION)], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout == done.stderr == ""
    assert sorted(p.name for p in (tmp_path / "pipelines").iterdir()) == ["training.yaml"]


@pytest.mark.parametrize(
    ("params", "why"),
    [
        ("monitor: {}\n", "cannot be compared with params.yaml (KeyError"),
        ("not: [yaml\n", "cannot be compared with params.yaml (ParserError"),
    ],
    ids=["keys-gone", "broken-params"],
)
def test_file_it_cannot_judge_is_kept(tmp_path: Path, params: str, why: str) -> None:
    """When params.yaml no longer says what the module read, nothing is deleted and the message says why."""
    (tmp_path / "pipelines").mkdir()
    workflow = tmp_path / RENDERED
    workflow.write_text("apiVersion: argoproj.io/v1alpha1\nkind: CronWorkflow\nmetadata: {name: x-drift}\n")
    (tmp_path / "params.yaml").write_text(params)
    (tmp_path / ".copier-answers.yml").write_text("package_name: churn\n")
    done = subprocess.run([sys.executable, str(MIGRATION)], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0 and workflow.is_file()
    assert f"kept {RENDERED}" in done.stderr and why in done.stderr
