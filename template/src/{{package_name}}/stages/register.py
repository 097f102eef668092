"""Register: record a model that passed the gate as a version in the MLflow registry."""

from __future__ import annotations

import json
from typing import Any

from mlops_runtime import card
from mlops_runtime.config import Params
from mlops_runtime.errors import GateFailed
from mlops_runtime.files import read_json
from mlops_runtime.lineage import lineage_tags
from mlops_runtime.registry import register_run


def version_tags(params: Params, metrics: dict, gate: dict, model_card: Any = None) -> dict[str, str]:
    """Lineage, params and evaluation recorded on the model version."""
    return {
        **lineage_tags(params),
        "estimator": params.train.estimator,
        "params.train": json.dumps(params.train.model_dump(mode="json"), sort_keys=True),
        # The tag keeps its first name so that registry searches written against it still match.
        "params.criteria": json.dumps(params.evaluate.model_dump(mode="json")["success_criteria"], sort_keys=True),
        "evaluation": json.dumps(metrics, sort_keys=True),
        "gate": "passed" if gate["passed"] else "failed",
        # Whether the card evaluate wrote is complete (card.py); promotion reads the card itself.
        "model_card": "complete" if not card.problems(model_card) else "incomplete",
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
    model_card = read_json(params.path("card"), "evaluate") if params.path("card").exists() else None
    tags = version_tags(params, metrics, gate, model_card)
    version, reused = register_run(params, info["model_uri"], info["run_id"], tags)
    name, alias = params.registry.model_name, params.registry.alias
    action = "already registered as" if reused else "registered as"
    return f"run {info['run_id']} {action} {name} version {version}, alias '{alias}'"
