"""A generated project's `make lint` (and so pre-commit and CI) fails while an update's conflicts remain."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .releases import TemplateClone, changelog_releases
from .test_update import commit, copy_release, update, updated_with_raised_bound

OLDEST = min(changelog_releases())


def make_lint(project: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`make lint` with the template's own tools standing in for the project's environment (no install)."""
    (project / ".venv").mkdir(exist_ok=True)
    if not (project / ".venv/bin").exists():  # the hooks call .venv/bin/<tool>
        (project / ".venv/bin").symlink_to(os.path.dirname(sys.executable), target_is_directory=True)
    (project / ".venv/.installed").touch()  # newer than pyproject.toml: `make setup` has nothing to do
    env = {
        **os.environ,
        "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}",
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit"),
    }
    return subprocess.run(["make", "lint"], cwd=project, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture
def updated(template_clone: TemplateClone, tmp_path: Path) -> Path:
    """A project updated from the oldest release, clean and committed."""
    project = copy_release(template_clone, template_clone.tag(OLDEST), tmp_path / "project", tmp_path / "remote")
    update(project)
    commit(project, "Template update")
    return project


def test_clean_update_passes_lint(updated: Path, tmp_path: Path) -> None:
    """Without leftovers, `make lint` passes: the failures below come from the leftovers alone."""
    done = make_lint(updated, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_conflict_markers_fail_lint(template_clone: TemplateClone, tmp_path: Path) -> None:
    """Markers staged as the update pull request stages them fail the merge-conflict hook, naming the file."""
    # The oldest release had evaluate.criteria; the project raises a bound right below the renamed key.
    project = updated_with_raised_bound(template_clone, template_clone.tag(OLDEST), tmp_path)
    subprocess.run(["git", "add", "--all"], cwd=project, check=True)

    done = make_lint(project, tmp_path)

    assert done.returncode != 0
    assert "no merge-conflict markers" in done.stdout and "Failed" in done.stdout
    assert "params.yaml" in done.stdout


def test_rejected_hunks_fail_lint(updated: Path, tmp_path: Path) -> None:
    """A .rej file fails `make lint` before anything else runs, untracked or committed."""
    (updated / "params.yaml.rej").write_text("@@ -1 +1 @@\n-a\n+b\n")
    done = make_lint(updated, tmp_path)
    assert done.returncode != 0
    assert "params.yaml.rej" in done.stderr and "copier update could not merge" in done.stderr

    commit(updated, "Commit the rejected hunk")
    (updated / ".venv").mkdir(exist_ok=True)
    done = subprocess.run(
        ["pre-commit", "run", "--all-files"],
        cwd=updated,
        env={
            **os.environ,
            "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}",
            "PRE_COMMIT_HOME": str(tmp_path / "pc"),
        },
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    assert "no rejected hunks left by a template update" in done.stdout and "params.yaml.rej" in done.stdout


def test_unmerged_module_fails_lint(updated: Path, tmp_path: Path) -> None:
    """A module the update left as .py.orig (the project's edit of a module now in the runtime) fails `make lint`."""
    package = yaml.safe_load((updated / ".copier-answers.yml").read_text())["package_name"]
    orig = f"src/{package}/serve.py.orig"
    (updated / orig).write_text('"""The project\'s serve.py before the update."""\n')
    done = make_lint(updated, tmp_path)
    assert done.returncode != 0
    assert orig in done.stderr and "copier update could not merge" in done.stderr

    commit(updated, "Commit the module left beside the new ones")
    done = subprocess.run(
        ["pre-commit", "run", "--all-files"],
        cwd=updated,
        env={
            **os.environ,
            "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}",
            "PRE_COMMIT_HOME": str(tmp_path / "pc"),
        },
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    assert "no module left unmerged by a template update" in done.stdout and orig in done.stdout
