"""Train stage: hyperparameter search over a scikit-learn pipeline, tracked in MLflow."""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import cloudpickle
import mlflow
import pandas as pd
from mlflow.models import infer_signature
from mlops_runtime import text
from mlops_runtime.config import Params, Train
from mlops_runtime.errors import ParamsError
from mlops_runtime.files import read_table, write_json
from mlops_runtime.lineage import lineage_tags
from mlops_runtime.monitoring.reference import write_reference
from mlops_runtime.registry import configure
from sklearn.base import BaseEstimator
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV
from sklearn.pipeline import Pipeline

from .featurize import build_preprocessor

logging.getLogger("mlflow.sklearn").setLevel(logging.ERROR)

ESTIMATORS: dict[str, type[BaseEstimator]] = {
    "hist_gradient_boosting": HistGradientBoostingClassifier,
    "random_forest": RandomForestClassifier,
    "logistic_regression": LogisticRegression,
}


def make_estimator(train: Train) -> BaseEstimator:
    estimator = ESTIMATORS[train.estimator]()
    if "random_state" in estimator.get_params():
        estimator.set_params(random_state=train.seed)
    return estimator


def build_search(params: Params) -> GridSearchCV | RandomizedSearchCV:
    """The model pipeline (features + estimator) wrapped in the configured search."""
    estimator = make_estimator(params.train)
    known = estimator.get_params()
    unknown = sorted(set(params.train.search.space) - set(known))
    if unknown:
        raise ParamsError(
            f"train.search.space has {unknown}, which {type(estimator).__name__} does not take; "
            f"valid names: {', '.join(sorted(k for k in known if '__' not in k))}"
        )
    pipeline = Pipeline([("features", build_preprocessor(params.data)), ("model", estimator)])
    space = {f"model__{name}": values for name, values in params.train.search.space.items()}
    search = params.train.search
    if search.method == "random":
        return RandomizedSearchCV(
            pipeline,
            space,
            n_iter=search.n_iter,
            cv=search.cv_folds,
            scoring=search.scoring,
            random_state=params.train.seed,
            refit=True,
        )
    return GridSearchCV(pipeline, space, cv=search.cv_folds, scoring=search.scoring, refit=True)


def split_xy(frame: pd.DataFrame, params: Params) -> tuple[pd.DataFrame, pd.Series]:
    return frame[params.data.features], frame[params.data.label].astype(int)


def serving_requirements() -> list[str]:
    return [f"{name}=={version(name)}" for name in ("scikit-learn", "pandas", "numpy", "cloudpickle", "joblib")]


def _flat(prefix: str, values: dict[str, Any]) -> dict[str, Any]:
    return {f"{prefix}.{key}": value for key, value in values.items()}


def _log_search(params: Params, rows: int) -> None:
    mlflow.log_params(
        {
            "estimator": params.train.estimator,
            "search.method": params.train.search.method,
            "search.cv_folds": params.train.search.cv_folds,
            "search.scoring": params.train.search.scoring,
            "rows.train": rows,
            **_flat("space", params.train.search.space),
        }
    )


@contextlib.contextmanager
def _carrying_the_text_normalisation() -> Iterator[None]:
    """Pickle text.py into the model by value: MLServer and `mlflow models serve` load the model in
    environments without this package, and the model's first text step calls it."""
    cloudpickle.register_pickle_by_value(text)
    try:
        yield
    finally:
        cloudpickle.unregister_pickle_by_value(text)


def _save_model(params: Params, best: BaseEstimator, features: pd.DataFrame) -> str:
    """Save the model in the workspace and log it to MLflow, its monitoring reference with it; its URI."""
    example = features.dropna().head(3)
    scratch = Path(tempfile.mkdtemp(prefix="monitoring-"))
    model_dir = params.path("model")
    shutil.rmtree(model_dir, ignore_errors=True)
    saved = {
        "signature": infer_signature(example, best.predict(example)),
        "input_example": example,
        # cloudpickle, not skops: serving runtimes load it as it is, and models only
        # ever come from this project's own registry (hence its warning is muted).
        "serialization_format": "cloudpickle",
        # What the model needs to predict, pinned; not the whole project environment.
        "pip_requirements": serving_requirements(),
        # The reference profile and outlier detector travel with the model (extra_files).
        "extra_files": write_reference(params, best, features, scratch),
    }
    with _carrying_the_text_normalisation():
        mlflow.sklearn.save_model(best, model_dir, **saved)
        logged = mlflow.sklearn.log_model(best, name="model", **saved)
    shutil.rmtree(scratch)
    return logged.model_uri


def main(params: Params) -> str:
    search = build_search(params)
    features, label = split_xy(read_table(params.path("train"), produced_by="featurize"), params)
    configure(params)
    with mlflow.start_run(run_name=f"train-{params.train.estimator}") as run:
        mlflow.set_tags({**lineage_tags(params), "stage": "train"})
        _log_search(params, len(features))
        search.fit(features, label)
        best_params = {k.removeprefix("model__"): v for k, v in search.best_params_.items()}
        mlflow.log_params(_flat("best", best_params))
        mlflow.log_metric(f"cv_{params.train.search.scoring}", float(search.best_score_))
        model_uri = _save_model(params, search.best_estimator_, features)

    write_json(
        {
            "run_id": run.info.run_id,
            "model_uri": model_uri,
            "estimator": params.train.estimator,
            "best_params": best_params,
            f"cv_{params.train.search.scoring}": float(search.best_score_),
        },
        params.path("model_info"),
    )
    return (
        f"best {params.train.estimator} {best_params}: cv {params.train.search.scoring} "
        f"{search.best_score_:.4f}; MLflow run {run.info.run_id} -> {params.paths.model}"
    )
