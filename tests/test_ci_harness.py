"""Slow: the `run:` steps of the generated ci.yml, in order, against a fresh project on this machine."""

from __future__ import annotations

from pathlib import Path

import pytest

from .ci_harness import NEEDS_GITHUB, run_ci
from .conftest import generate, run

pytestmark = pytest.mark.slow


def test_ci_run_steps_pass_on_a_fresh_project(tmp_path: Path) -> None:
    """Every shell step of ci.yml passes in order on a pull request branch; the GitHub-only steps are the known ones."""
    origin = generate(tmp_path / "origin", tmp_path / "remote", tasks=True)
    work = tmp_path / "work"  # what actions/checkout gives: a clone, with origin/main to compare with
    run(["git", "clone", "--quiet", str(origin), str(work)], cwd=tmp_path)
    run(["git", "switch", "--quiet", "-c", "change"], cwd=work)
    done = run_ci(work, tmp_path)
    assert done.passed, f"{done.failed} failed:\n{done.output}"
    ran, skipped = done.ran, done.skipped

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
        "Promotion history",
        "Metrics of this change against prod",
    ]
    comment = (work / "comment/metrics.md").read_text()
    assert "this change vs `prod`" in comment and "| roc_auc | >= 0.75 |" in comment
