"""A generated project's tests/test_dvc_truth.py catches a dvc.yaml that does not declare what a stage uses.

Fast: the code half runs in this environment (it needs DVC, pydantic and PyYAML, not the project's own
environment). Slow: the params half runs the stages in an installed project, once, and `dvc status` reacts to a
key that only the train stage reads.
"""

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

from .conftest import generate, project_pythonpath, run

TRUTH_TEST = "tests/test_dvc_truth.py"


def package_of(root: Path) -> str:
    return yaml.safe_load((root / ".copier-answers.yml").read_text())["package_name"]


def edit_stage(root: Path, stage: str, field: str, *, remove: str | None = None, add: str | None = None) -> None:
    """Take `remove` out of (or put `add` into) stages.<stage>.<field> of dvc.yaml."""
    path = root / "dvc.yaml"
    pipeline = yaml.safe_load(path.read_text())
    entries = pipeline["stages"][stage][field]
    if remove is not None:
        assert remove in entries, f"{remove} is not in stages.{stage}.{field}: {entries}"
        entries.remove(remove)
    if add is not None:
        entries.append(add)
    path.write_text(yaml.safe_dump(pipeline, sort_keys=False))


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project rendered without its copy task, made a git repository (DVC wants one)."""
    root = generate(tmp_path_factory.mktemp("dvc-truth") / "project")
    subprocess.run(["git", "init", "--quiet"], cwd=root, check=True)
    return root


def code_half(root: Path) -> subprocess.CompletedProcess[str]:
    """The project's code checks (the params check needs the project's environment) run with this interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "code", TRUTH_TEST],
        cwd=root,
        env={**os.environ, "PYTHONPATH": project_pythonpath(root)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_rendered_dvc_yaml_lists_the_code_each_stage_runs(rendered: Path) -> None:
    done = code_half(rendered)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "5 passed" in done.stdout, done.stdout[-2000:]


def test_undeclared_and_unused_code_are_named(rendered: Path, tmp_path: Path) -> None:
    """A module dropped from a stage's deps, one listed but never imported, a new import, and a stage without
    uv.lock (the runtime and libraries) each fail by name."""
    root = tmp_path / "project"
    shutil.copytree(rendered, root, symlinks=True)
    package = package_of(root)
    edit_stage(root, "train", "deps", remove=f"src/{package}/stages/featurize.py")
    edit_stage(root, "ingest", "deps", add=f"src/{package}/stages/train.py")
    edit_stage(root, "validate", "deps", remove="uv.lock")
    featurize = root / "src" / package / "stages" / "featurize.py"
    featurize.write_text(
        featurize.read_text() + "\n\ndef _search_space(name: str) -> object:\n"
        "    from .train import ESTIMATORS\n\n    return ESTIMATORS[name]\n"
    )

    done = code_half(root)
    out = done.stdout
    assert done.returncode == 1, out[-4000:] + done.stderr[-4000:]
    assert (
        f"stage train runs src/{package}/stages/featurize.py (stages/train.py -> stages/featurize.py) but "
        f"dvc.yaml does not list it: add `- src/{package}/stages/featurize.py` under stages.train.deps"
    ) in out, out[-4000:]
    assert (
        f"stage ingest lists src/{package}/stages/train.py, which its code never imports: "
        f"remove `- src/{package}/stages/train.py` from stages.ingest.deps"
    ) in out, out[-4000:]
    assert f"stage featurize runs src/{package}/stages/train.py (stages/featurize.py -> stages/train.py)" in out, out[
        -4000:
    ]
    assert "stage validate runs the runtime and libraries uv.lock pins, but dvc.yaml does not list it" in out
    # The stage left alone still passes: each failure is the edited stage's own.
    assert "4 failed, 1 passed" in out, out[-2000:]
    assert "FAILED tests/test_dvc_truth.py::test_stage_lists_exactly_the_code_it_runs[evaluate]" not in out


@pytest.mark.slow
def test_undeclared_param_fails_the_project_and_dvc_status_sees_the_declared_one(tmp_path: Path) -> None:
    """In an installed project: once the train stage stops declaring monitor.outlier_contamination, the truth
    test fails naming it and nothing else; declared, a changed contamination makes the train stage (only) changed."""
    root = generate(tmp_path / "project", tmp_path / "remote", tasks=True)
    env = {"MLFLOW_TRACKING_URI": "", "OMP_NUM_THREADS": "1", "PATH": f"{root / '.venv/bin'}:{os.environ['PATH']}"}
    run(["make", "setup"], cwd=root, env=env)

    pristine = (root / "dvc.yaml").read_text()
    edit_stage(root, "train", "params", remove="monitor.outlier_contamination")
    done = subprocess.run(
        [str(root / ".venv/bin/python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "params", TRUTH_TEST],
        cwd=root,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 1, done.stdout[-4000:] + done.stderr[-4000:]
    problems = re.findall(r"^E +(stage \S+ .*)$", done.stdout, re.MULTILINE)
    # The one key taken out, and nothing else: as generated, the project passes.
    assert problems == [
        "stage train reads monitor.outlier_contamination but dvc.yaml does not declare it: "
        "add `- monitor.outlier_contamination` under stages.train.params"
    ], done.stdout[-4000:]
    (root / "dvc.yaml").write_text(pristine)

    # One point of the search space: the same stages and keys, a quarter of the training time.
    params = root / "params.yaml"
    text = params.read_text()
    for old, new in (("learning_rate: [0.05, 0.1]", "learning_rate: [0.1]"), ("max_depth: [3, 6]", "max_depth: [3]")):
        assert old in text, old
        text = text.replace(old, new, 1)
    params.write_text(text)
    dvc = str(root / ".venv/bin/dvc")
    run([dvc, "repro", "--quiet", "train"], cwd=root, env=env)
    assert json.loads(run([dvc, "status", "--json", "train"], cwd=root, env=env)) == {}
    assert "outlier_contamination: 0.01 " in text
    params.write_text(text.replace("outlier_contamination: 0.01 ", "outlier_contamination: 0.02 ", 1))
    status = json.loads(run([dvc, "status", "--json"], cwd=root, env=env))
    assert status["train"] == [{"changed deps": {"params.yaml": {"monitor.outlier_contamination": "modified"}}}]
    assert not {"ingest", "validate", "featurize"} & set(status), status
