"""Fixtures: the runtime's tests run against a generated project (its params.yaml, stages, model card text and
deploy/), in throwaway folders with small data and an MLflow store each.

The project is the working directory, or the folder RUNTIME_TEST_PROJECT names; its environment has this runtime
installed. The template's own tests generate the default project and run these there.
"""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from mlops_runtime.config import Params, load_params
from mlops_runtime.project import package
from mlops_runtime.sample_data import write_sample

PROJECT_ROOT = Path(os.environ.get("RUNTIME_TEST_PROJECT", ".")).resolve()
if not (PROJECT_ROOT / "params.yaml").is_file():
    raise pytest.UsageError(
        f"{PROJECT_ROOT} has no params.yaml: run the runtime's tests from a generated project (or set "
        "RUNTIME_TEST_PROJECT to one) whose environment has this runtime installed"
    )
# The project's answers and names, where the tests need what the template rendered.
ANSWERS = yaml.safe_load((PROJECT_ROOT / ".copier-answers.yml").read_text(encoding="utf-8"))
SLUG = ANSWERS["project_slug"]
PACKAGE = package()
MODEL_NAME = load_params(PROJECT_ROOT / "params.yaml").registry.model_name


def stage_modules(*names: str) -> tuple[ModuleType, ...]:
    """The project's stage modules (`<package>.stages.<name>`): the ML code the runtime runs."""
    return tuple(importlib.import_module(f"{PACKAGE}.stages.{name}") for name in names)


@pytest.fixture(autouse=True)
def _isolated_mlflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test records runs and models in its own SQLite store."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A copy of params.yaml and of the model card's text, with 4000 sample rows at its ingest source."""
    shutil.copy(PROJECT_ROOT / "params.yaml", tmp_path / "params.yaml")
    shutil.copy(PROJECT_ROOT / "model_card.md", tmp_path / "model_card.md")
    source = yaml.safe_load((tmp_path / "params.yaml").read_text())["ingest"]["source"]
    write_sample(tmp_path / source, rows=4000, seed=11)
    return tmp_path


def edit_params(workdir: Path, **sections: dict) -> None:
    """Merge `sections` into the workdir's params.yaml (one level deep)."""
    path = workdir / "params.yaml"
    data = yaml.safe_load(path.read_text())
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    path.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture
def params(workdir: Path) -> Params:
    """Parameters of the workdir, with a small search space so tests stay quick."""
    search = {"method": "grid", "cv_folds": 2, "scoring": "roc_auc", "space": {"max_iter": [60], "max_depth": [3]}}
    edit_params(workdir, train={"search": search})
    return load_params(workdir / "params.yaml")
