"""Slow: install generated projects and run their own `make all`, `make test` and `make lint`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from .conftest import generate, run

pytestmark = pytest.mark.slow

PROJECTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "custom-deployment-nomonitoring": {
        "project_name": "Fraud Detector",
        "package_name": "fraud",
        "model_name": "fraud-model",
        "serving_runtime": "deployment",
        "enable_monitoring": False,
    },
}


@pytest.mark.parametrize("answers", PROJECTS.values(), ids=list(PROJECTS))
def test_make_all_then_make_test(answers: dict[str, Any], tmp_path: Path) -> None:
    """`make all` trains, evaluates and registers; the project's tests and lint pass."""
    root = generate(tmp_path / "project", tmp_path / "remote", tasks=True, **answers)
    # The project's own default store; one OpenMP thread per process, as the two
    # projects train side by side on the test workers.
    env = {"MLFLOW_TRACKING_URI": "", "OMP_NUM_THREADS": "1"}
    out = run(["make", "all"], cwd=root, env=env)

    assert "registered as" in out and "alias 'challenger'" in out
    assert "gate           passed" in out
    metrics = json.loads((root / "reports/metrics.json").read_text())
    assert metrics["roc_auc"] >= 0.75
    assert (root / "dvc.lock").exists() and (root / "mlflow.db").exists()
    # The image build's inputs exist: the lock file and the rendered cluster pipeline.
    assert (root / "uv.lock").exists() and (root / "pipelines/training.yaml").exists()

    # Nothing left to do: the pipeline is reproducible from what it recorded.
    assert "Data and pipelines are up to date" in run(["make", "pipeline"], cwd=root, env=env)
    run(["make", "test"], cwd=root, env=env)
    run(["make", "lint"], cwd=root, env=env)

    # Once the run is committed, a fresh clone gets data and every output back with `dvc pull`.
    run(["git", "add", "--all"], cwd=root)
    run(["git", "commit", "--quiet", "--no-verify", "-m", "First model"], cwd=root)
    clone = tmp_path / "clone"
    run(["git", "clone", "--quiet", str(root), str(clone)], cwd=tmp_path)
    run(["dvc", "pull", "--quiet"], cwd=clone, env={"PATH": f"{root / '.venv/bin'}:{os.environ['PATH']}"})
    assert (clone / "models/model/MLmodel").exists()
