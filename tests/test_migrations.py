"""Update migrations: each one from the release before it, rerun safely, and refusing rather than losing data."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from packaging.version import Version

from .conftest import REPO_ROOT, run
from .releases import TemplateClone, changelog_releases
from .test_update import commit, conflicts, copy_release, update, updated_with_raised_bound

MIGRATION = REPO_ROOT / "hooks" / "migrate_success_criteria.py"
PIN_TEMPLATE = "includes/overlay-model.yaml.jinja"
BEFORE_0_2_0 = max(v for v in changelog_releases() if v < Version("0.2.0"))

OLD_PARAMS = """# Project parameters
evaluate:
  decision_threshold: 0.5
  # our bar, agreed with the retention team
  criteria:
    roc_auc: {min: 0.8}   # raised in March
    f1: {min: 0.55}
  slice_by: [region]

register:
  model_name: churn
  criteria: not-the-evaluate-one
"""


def migrate(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(MIGRATION)], cwd=cwd, capture_output=True, text=True)


def test_renames_in_place_keeping_values_and_comments(tmp_path: Path) -> None:
    """Only the key under evaluate changes; values, comments and other sections stay byte for byte."""
    (tmp_path / "params.yaml").write_text(OLD_PARAMS)
    done = migrate(tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "params.yaml").read_text() == OLD_PARAMS.replace(
        "  criteria:\n    roc", "  success_criteria:\n    roc"
    )


def test_rerun_changes_nothing(tmp_path: Path) -> None:
    """A second run (or a run on a project already migrated) leaves the file as it is."""
    (tmp_path / "params.yaml").write_text(OLD_PARAMS)
    migrate(tmp_path)
    once = (tmp_path / "params.yaml").read_text()
    done = migrate(tmp_path)
    assert done.returncode == 0 and done.stdout == ""
    assert (tmp_path / "params.yaml").read_text() == once


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (OLD_PARAMS.replace("  slice_by", "  success_criteria: {}\n  slice_by"), "both"),
        ("evaluate: {criteria: {roc_auc: {min: 0.8}}}\n", "by hand"),
        ("evaluate:\n  criteria: [unclosed\n", "not valid YAML"),
    ],
    ids=["both-keys", "flow-style", "broken-yaml"],
)
def test_refuses_what_it_cannot_rename_safely(tmp_path: Path, text: str, reason: str) -> None:
    """When the rename is ambiguous or unsafe, the file is untouched and the message says what to do."""
    (tmp_path / "params.yaml").write_text(text)
    done = migrate(tmp_path)
    assert done.returncode == 1
    assert reason in done.stderr and "params.yaml" in done.stderr
    assert (tmp_path / "params.yaml").read_text() == text


def test_refusal_stops_the_update_before_any_change(template_clone: TemplateClone, tmp_path: Path) -> None:
    """A migration that refuses aborts `copier update`, and the project stays at its release, untouched."""
    project = copy_release(template_clone, template_clone.tag(BEFORE_0_2_0), tmp_path / "project", tmp_path / "remote")
    params = project / "params.yaml"
    params.write_text(params.read_text().replace("  slice_by:", "  success_criteria: {}\n  slice_by:"))
    commit(project, "Both keys")
    head = run(["git", "rev-parse", "HEAD"], cwd=project)

    with pytest.raises(Exception, match="migrate_success_criteria"):
        update(project)

    assert run(["git", "status", "--porcelain"], cwd=project) == ""
    assert run(["git", "rev-parse", "HEAD"], cwd=project) == head


def test_project_value_next_to_the_rename_is_kept(template_clone: TemplateClone, tmp_path: Path) -> None:
    """A bound the project raised beside the renamed key is shown as a conflict whose both sides use the new key."""
    project = updated_with_raised_bound(template_clone, template_clone.tag(BEFORE_0_2_0), tmp_path)

    shown = conflicts(project)
    assert list(shown) == ["params.yaml"]
    # Keeping the project's side of every conflict gives the new layout with the project's value.
    ours = re.sub(r"<<<<<<< [^\n]*\n(.*?)=======\n.*?>>>>>>> [^\n]*\n", r"\1", shown["params.yaml"], flags=re.S)
    evaluate = yaml.safe_load(ours)["evaluate"]
    assert "criteria" not in evaluate
    assert evaluate["success_criteria"]["roc_auc"] == {"min": 0.8}


@pytest.mark.parametrize("monitoring", [True, False], ids=["monitoring", "no-monitoring"])
def test_pinned_environment_keeps_serving_across_the_image_pin(
    template_clone: TemplateClone, tmp_path: Path, monitoring: bool
) -> None:
    """Updating to 0.3.0, a pinned environment gets the image of its version and an unpinned one none, no conflict."""
    # The newest commit whose pins have no image (no release before 0.3.0 has pins at all).
    added = run(["git", "log", "-1", "--format=%H", "-S", 'image: "none"', "--", PIN_TEMPLATE], cwd=REPO_ROOT).strip()
    before = run(["git", "rev-parse", f"{added}^" if added else "HEAD"], cwd=REPO_ROOT).strip()
    project = copy_release(
        template_clone, before, tmp_path / "project", tmp_path / "remote",
        enable_monitoring=monitoring, serving_runtime="deployment",
    )  # fmt: skip
    commit_sha = "0123456789abcdef0123456789abcdef01234567"
    dev = project / "deploy/overlays/dev/model.yaml"
    text = dev.read_text()
    for old, new in [
        ('  version: "none"', '  version: "4"'),
        ('storageUri: "none"', 'storageUri: "s3://models/4/artifacts/model"'),
        ('model.mlops/git-commit: "none"', f'model.mlops/git-commit: "{commit_sha}"'),
        ("replicas: 0", "replicas: 1"),
    ]:
        assert old in text
        text = text.replace(old, new, 1)
    dev.write_text(text)
    commit(project, "Promote model version 4 to dev")

    update(project)

    assert conflicts(project) == {}
    image = yaml.safe_load((project / "params.yaml").read_text())["argo"]["image"]
    pinned = yaml.safe_load(dev.read_text())["spec"]
    assert pinned["image"] == f"{image}:{commit_sha}" and pinned["version"] == "4"
    unpinned = yaml.safe_load((project / "deploy/overlays/prod/model.yaml").read_text())["spec"]
    assert unpinned["image"] == "none"
    if monitoring:
        assert pinned["suspendDrift"] is False and unpinned["suspendDrift"] is True
    else:
        assert "suspendDrift" not in pinned

    # Running the migration again changes nothing.
    before = dev.read_text()
    run([sys.executable, str(REPO_ROOT / "hooks/migrate_pin_image.py")], cwd=project)
    assert dev.read_text() == before
