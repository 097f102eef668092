"""Summary: what the last local run produced and where to look at it."""

from __future__ import annotations

import json

from .config import Params
from .tracking import tracking_uri


def _read(params: Params, name: str) -> object | None:
    path = params.path(name)
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def registered_version(params: Params) -> str:
    """The version behind the candidate alias, or why there is none."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from .tracking import configure

    configure(params)
    try:
        version = MlflowClient().get_model_version_by_alias(params.registry.model_name, params.registry.alias)
    except MlflowException:
        return f"none with alias '{params.registry.alias}' yet (run `make register`)"
    name, alias = params.registry.model_name, params.registry.alias
    return f"{name} version {version.version} (alias '{alias}', run {version.run_id})"


def main(params: Params) -> str:
    metrics = _read(params, "metrics")
    gate = _read(params, "gate")
    uri = tracking_uri(params)
    lines = ["", f"  data           {params.ingest.source} (DVC pointer data/raw.dvc)"]
    if isinstance(metrics, dict):
        shown = ", ".join(f"{k} {v:.3f}" for k, v in metrics.items() if k in params.evaluate.success_criteria)
        lines.append(f"  held-out       {shown}  [{params.paths.metrics}]")
    if isinstance(gate, dict):
        verdict = "passed" if gate["passed"] else "failed: " + "; ".join(gate["failures"])
        lines.append(f"  gate           {verdict}  [{params.paths.gate}]")
    lines += [
        f"  bias report    per-slice metrics  [{params.paths.slices}]",
        f"  plots          {params.paths.confusion}, {params.paths.roc}  (make plots)",
        f"  model          {params.paths.model}",
        f"  registry       {registered_version(params)}",
        f"  MLflow store   {uri}  (browse: mlflow ui --backend-store-uri {uri})",
        "  next           make serve (V2 API on localhost), make validate (Kubernetes manifests),",
        "                 make promote ENV=dev VERSION=<n> (pin a version for dev, by pull request)",
    ]
    return "\n".join(lines)
