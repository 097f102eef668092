"""MLflow set-up: one place that decides where runs and models are recorded."""

from __future__ import annotations

import os
from pathlib import Path

import mlflow

from .config import Params


def tracking_uri(params: Params) -> str:
    """MLFLOW_TRACKING_URI if set, else params.yaml; a relative SQLite file sits in the project root."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or params.mlflow.tracking_uri
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not Path(uri[len(prefix) :]).is_absolute():
        uri = prefix + str(params.root / uri[len(prefix) :])
    return uri


def configure(params: Params) -> str:
    """Point MLflow at the tracking store and select the project's experiment; return the URI."""
    # Models carry their own pinned requirements (train.serving_requirements), not
    # the project's uv.lock, which holds the whole development environment.
    os.environ.setdefault("MLFLOW_LOG_UV_FILES", "false")
    uri = tracking_uri(params)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    name = params.mlflow.experiment
    if uri.startswith("sqlite:") and mlflow.get_experiment_by_name(name) is None:
        # Keep artifacts beside the database instead of wherever the process started.
        mlflow.create_experiment(name, artifact_location=(params.root / "mlartifacts").as_uri())
    mlflow.set_experiment(name)
    return uri
