"""Argo workflows of generated projects: reviewed snapshots, valid against the CRD schemas."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from .conftest import COMBINATIONS, REPO_ROOT, generate

SNAPSHOTS = Path(__file__).parent / "snapshots"
# The CRD schemas live outside the repository: K8S_SCHEMAS_DIR, else ../shared/k8s-schemas.
SCHEMAS = Path(os.environ.get("K8S_SCHEMAS_DIR", REPO_ROOT.parent / "shared" / "k8s-schemas"))
RENDER = (
    "import json, sys; from pathlib import Path; from {package}.argo import workflows; "
    "json.dump({{name: w.to_yaml() for name, w in workflows(Path('.')).items()}}, sys.stdout)"
)


def strict(schema: Any) -> Any:
    """The schema with unknown fields refused wherever it lists the known ones (kubectl's strict mode)."""
    if isinstance(schema, dict):
        schema = {key: strict(value) for key, value in schema.items()}
        open_ended = "additionalProperties" in schema or schema.get("x-kubernetes-preserve-unknown-fields")
        if "properties" in schema and not open_ended:
            schema["additionalProperties"] = False
    elif isinstance(schema, list):
        schema = [strict(item) for item in schema]
    return schema


@cache
def crd_schema(api_version: str, kind: str) -> dict:
    group, version = api_version.split("/")
    path = SCHEMAS / group / f"{kind.lower()}_{version}.json"
    assert path.exists(), f"no schema for {kind} at {path}: set K8S_SCHEMAS_DIR"
    return strict(json.loads(path.read_text()))


def schema_errors(document: dict) -> list[str]:
    validator = jsonschema.Draft7Validator(crd_schema(document["apiVersion"], document["kind"]))
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


@pytest.fixture(scope="module", params=list(COMBINATIONS), ids=list(COMBINATIONS))
def rendered(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, str]]:
    """(combination, {workflow file name: the YAML its project renders})."""
    base = tmp_path_factory.mktemp(request.param)
    with pytest.MonkeyPatch.context() as patch:
        for role in ("AUTHOR", "COMMITTER"):
            patch.setenv(f"GIT_{role}_NAME", "Template Tests")
            patch.setenv(f"GIT_{role}_EMAIL", "tests@example.com")
        root = generate(base / "project", base / "remote", tasks=True, **COMBINATIONS[request.param])
    package = yaml.safe_load((root / ".copier-answers.yml").read_text())["package_name"]
    done = subprocess.run(
        [sys.executable, "-c", RENDER.format(package=package)],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root / "src")},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return request.param, json.loads(done.stdout)


def test_workflows_follow_the_answers(rendered: tuple[str, dict[str, str]]) -> None:
    """Every project has the training pipeline; the scheduled drift check comes with monitoring."""
    name, workflows = rendered
    monitoring = COMBINATIONS[name].get("enable_monitoring", True)
    assert set(workflows) == ({"training", "monitoring"} if monitoring else {"training"})


def test_matches_the_reviewed_snapshot(rendered: tuple[str, dict[str, str]]) -> None:
    """The rendered workflows are the ones in tests/snapshots (`make snapshots` rewrites them for review)."""
    name, workflows = rendered
    for workflow, text in workflows.items():
        snapshot = SNAPSHOTS / name / f"{workflow}.yaml"
        if os.environ.get("UPDATE_SNAPSHOTS"):
            snapshot.parent.mkdir(parents=True, exist_ok=True)
            snapshot.write_text(text)
        assert snapshot.exists(), f"no snapshot {snapshot}: run `make snapshots` and review it"
        assert text == snapshot.read_text(), f"{snapshot} is out of date: run `make snapshots` and review the diff"


def test_validates_against_the_crd_schemas(rendered: tuple[str, dict[str, str]]) -> None:
    """Each workflow is valid for Argo's CRD schema of its kind, unknown fields refused."""
    _, workflows = rendered
    for text in workflows.values():
        document = yaml.safe_load(text)
        assert document["kind"] in {"WorkflowTemplate", "CronWorkflow"}
        assert schema_errors(document) == []


def test_schema_check_rejects_unknown_fields_and_wrong_types(rendered: tuple[str, dict[str, str]]) -> None:
    """The check can fail: a misspelt field and a wrong type are both reported with their path."""
    _, workflows = rendered
    broken = copy.deepcopy(yaml.safe_load(workflows["training"]))
    broken["spec"]["templates"][0]["container"]["imagePullPolicyy"] = "Always"
    broken["spec"]["ttlStrategy"]["secondsAfterCompletion"] = "a day"
    errors = "\n".join(schema_errors(broken))
    assert "imagePullPolicyy" in errors
    assert "spec/ttlStrategy/secondsAfterCompletion" in errors
