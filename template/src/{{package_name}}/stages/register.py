"""Register: record a model that passed the gate as a version in the MLflow registry."""

from __future__ import annotations

import json

import mlflow
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion

from ..config import Params
from ..errors import GateFailed
from ..files import read_json
from ..lineage import lineage_tags
from ..registry import configure, lost


def _existing_version(client: MlflowClient, name: str, run_id: str) -> ModelVersion | None:
    """The version already registered from this run, so reruns do not pile up copies."""
    try:
        found = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    except mlflow.exceptions.MlflowException as exc:
        if unanswered := lost(exc):
            raise unanswered from None
        return None
    return max(found, key=lambda v: int(v.version)) if found else None


def version_tags(params: Params, metrics: dict, gate: dict) -> dict[str, str]:
    """Lineage, params and evaluation recorded on the model version."""
    return {
        **lineage_tags(params),
        "estimator": params.train.estimator,
        "params.train": json.dumps(params.train.model_dump(mode="json"), sort_keys=True),
        # The tag keeps its first name so that registry searches written against it still match.
        "params.criteria": json.dumps(params.evaluate.model_dump(mode="json")["success_criteria"], sort_keys=True),
        "evaluation": json.dumps(metrics, sort_keys=True),
        "gate": "passed" if gate["passed"] else "failed",
    }


def main(params: Params) -> str:
    gate = read_json(params.path("gate"), "evaluate")
    info = read_json(params.path("model_info"), "train")
    if not gate["passed"]:
        raise GateFailed(
            f"run {info['run_id']} was not registered: it fails the success criteria in params.yaml:\n  "
            + "\n  ".join(gate["failures"])
        )
    metrics = read_json(params.path("metrics"), "evaluate")
    configure(params)
    client = MlflowClient()
    name, alias = params.registry.model_name, params.registry.alias
    version = _existing_version(client, name, info["run_id"])
    reused = version is not None
    if version is None:
        version = mlflow.register_model(info["model_uri"], name, tags=version_tags(params, metrics, gate))
    client.set_registered_model_alias(name, alias, version.version)
    action = "already registered as" if reused else "registered as"
    return f"run {info['run_id']} {action} {name} version {version.version}, alias '{alias}'"
