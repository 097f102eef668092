"""Argo workflows of generated projects: reviewed snapshots, valid against the CRD schemas."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import COMBINATIONS, generate, project_pythonpath

SNAPSHOTS = Path(__file__).parent / "snapshots"
# In the generated project: render every workflow, and check each one (plus a deliberately
# broken copy of the training template) with the project's own strict schema validation.
RENDER = """
import copy, json, sys, yaml
from pathlib import Path
from mlops_runtime.argo.render import workflows
from mlops_runtime.release.manifests import validate_custom
schemas = Path(sys.argv[1])
rendered = {{name: w.to_yaml() for name, w in workflows(Path('.')).items()}}
broken = copy.deepcopy(yaml.safe_load(rendered['training']))
broken['spec']['templates'][0]['container']['imagePullPolicyy'] = 'Always'
broken['spec']['ttlStrategy']['secondsAfterCompletion'] = 'a day'
json.dump({{
    'yaml': rendered,
    'problems': {{name: validate_custom(yaml.safe_load(text), schemas) for name, text in rendered.items()}},
    'broken': validate_custom(broken, schemas),
    'pod_security': yaml.safe_load(Path('deploy/components/pod-security/pod-security.yaml').read_text()),
}}, sys.stdout)
"""


@pytest.fixture(scope="module", params=list(COMBINATIONS), ids=list(COMBINATIONS))
def rendered(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict]:
    """(combination, what its project renders and what validation found)."""
    base = tmp_path_factory.mktemp(request.param)
    with pytest.MonkeyPatch.context() as patch:
        for role in ("AUTHOR", "COMMITTER"):
            patch.setenv(f"GIT_{role}_NAME", "Template Tests")
            patch.setenv(f"GIT_{role}_EMAIL", "tests@example.com")
        root = generate(base / "project", base / "remote", tasks=True, **COMBINATIONS[request.param])
    package = yaml.safe_load((root / ".copier-answers.yml").read_text())["package_name"]
    done = subprocess.run(
        [sys.executable, "-c", RENDER.format(package=package), str(root / "deploy/schemas")],
        cwd=root,
        env={**os.environ, "PYTHONPATH": project_pythonpath(root)},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return request.param, json.loads(done.stdout)


def test_training_is_the_only_workflow(rendered: tuple[str, dict]) -> None:
    """The training pipeline is the only workflow: the scheduled drift check is each environment's CronJob."""
    _, result = rendered
    assert set(result["yaml"]) == {"training"}


def test_matches_the_reviewed_snapshot(rendered: tuple[str, dict]) -> None:
    """The rendered workflows are the ones in tests/snapshots (`make snapshots` rewrites them for review)."""
    name, result = rendered
    for workflow, text in result["yaml"].items():
        snapshot = SNAPSHOTS / name / f"{workflow}.yaml"
        if os.environ.get("UPDATE_SNAPSHOTS"):
            snapshot.parent.mkdir(parents=True, exist_ok=True)
            snapshot.write_text(text)
        assert snapshot.exists(), f"no snapshot {snapshot}: run `make snapshots` and review it"
        assert text == snapshot.read_text(), f"{snapshot} is out of date: run `make snapshots` and review the diff"


def test_validates_against_the_crd_schemas(rendered: tuple[str, dict]) -> None:
    """Each workflow is valid for Argo's CRD schema of its kind, unknown fields refused."""
    _, result = rendered
    kinds = {yaml.safe_load(text)["kind"] for text in result["yaml"].values()}
    assert kinds == {"WorkflowTemplate"}
    assert result["problems"] == {name: [] for name in result["yaml"]}


def test_workflow_pods_run_as_the_serving_pods_do(rendered: tuple[str, dict]) -> None:
    """Every workflow's pod security context is the one deploy/components/pod-security gives the serving pods."""
    _, result = rendered
    expected = result["pod_security"]["spec"]["securityContext"]
    for name, text in result["yaml"].items():
        spec = yaml.safe_load(text)["spec"]
        assert spec.get("workflowSpec", spec)["securityContext"] == expected, name


def test_schema_check_rejects_unknown_fields_and_wrong_types(rendered: tuple[str, dict]) -> None:
    """The check can fail: a misspelt field and a wrong type are both reported with their path."""
    _, result = rendered
    findings = "\n".join(f"{path}: {message}" for path, message in result["broken"])
    assert "imagePullPolicyy" in findings
    assert "spec.ttlStrategy.secondsAfterCompletion" in findings
