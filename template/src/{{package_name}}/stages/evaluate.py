"""Evaluate stage: held-out metrics, the slice (bias) report, the gate of success and fairness criteria, and
the model card."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlops_runtime import card
from mlops_runtime.config import Params
from mlops_runtime.errors import ParamsError
from mlops_runtime.files import read_json, read_table, write_json
from mlops_runtime.lineage import COMMIT_TAG, DATA_HASH_TAG, DIRTY_TAG, UNKNOWN, template_version
from mlops_runtime.monitoring.reference import load_profile
from mlops_runtime.registry import configure
from mlops_runtime.release.criteria import fairness_results, gate
from sklearn import metrics as skm

from .train import split_xy

# name -> f(y_true, predicted label, predicted probability of the positive class)
METRICS: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], float]] = {
    "accuracy": lambda y, pred, prob: skm.accuracy_score(y, pred),
    "precision": lambda y, pred, prob: skm.precision_score(y, pred, zero_division=0),
    "recall": lambda y, pred, prob: skm.recall_score(y, pred, zero_division=0),
    "f1": lambda y, pred, prob: skm.f1_score(y, pred, zero_division=0),
    "roc_auc": lambda y, pred, prob: skm.roc_auc_score(y, prob),
    "average_precision": lambda y, pred, prob: skm.average_precision_score(y, prob),
    "brier": lambda y, pred, prob: skm.brier_score_loss(y, prob),
    # The share predicted positive, and of the actual negatives (0 when a slice has none).
    "positive_rate": lambda y, pred, prob: pred.mean(),
    "false_positive_rate": lambda y, pred, prob: pred[y == 0].mean() if (y == 0).any() else 0.0,
}
NEEDS_BOTH_CLASSES = {"roc_auc", "average_precision"}


def score(y: np.ndarray, prob: np.ndarray, threshold: float) -> dict[str, float]:
    """Every metric in METRICS that is defined for these labels."""
    pred = (prob >= threshold).astype(int)
    both = len(np.unique(y)) == 2
    return {
        name: round(float(fn(y, pred, prob)), 6)
        for name, fn in METRICS.items()
        if both or name not in NEEDS_BOTH_CLASSES
    }


def slice_report(frame: pd.DataFrame, y: np.ndarray, prob: np.ndarray, params: Params) -> list[dict[str, Any]]:
    """Metrics per value of each slice_by column (the bias report)."""
    rows = []
    for column in params.evaluate.slice_by:
        values = frame[column].astype("string").fillna("(missing)").to_numpy()
        for value in sorted(set(values)):
            mask = values == value
            rows.append(
                {
                    "slice": column,
                    "value": str(value),
                    "rows": int(mask.sum()),
                    "label_rate": round(float(y[mask].mean()), 6),
                    **score(y[mask], prob[mask], params.evaluate.decision_threshold),
                }
            )
    return rows


def check_criteria_names(params: Params) -> None:
    unknown = sorted(set(params.evaluate.success_criteria) - set(METRICS))
    if unknown:
        raise ParamsError(f"evaluate names unknown metric(s) {unknown}; known metrics: {', '.join(METRICS)}")


def write_plots(y: np.ndarray, prob: np.ndarray, params: Params) -> None:
    """CSV data for DVC plots: the confusion matrix and the ROC curve."""
    pred = (prob >= params.evaluate.decision_threshold).astype(int)
    confusion = params.path("confusion")
    confusion.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"actual": y, "predicted": pred}).to_csv(confusion, index=False)
    fpr, tpr, thresholds = skm.roc_curve(y, prob)
    roc = pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": np.clip(thresholds, 0, 1)})
    roc.round(6).to_csv(params.path("roc"), index=False)


def model_card(
    params: Params,
    info: dict[str, Any],
    overall: dict[str, float],
    slices: list[dict[str, Any]],
    fairness: list[dict[str, Any]],
    y: np.ndarray,
    prob: np.ndarray,
) -> dict[str, Any]:
    """The card of the evaluated model: the owners' sections from paths.card_text, the rest from this run."""
    tags = mlflow.get_run(info["run_id"]).data.tags
    profile = load_profile(params.path("model"))
    criteria = params.evaluate.success_criteria
    return card.build(
        text_path=params.path("card_text"),
        model={
            "name": params.registry.model_name,
            "estimator": info["estimator"],
            "hyperparameters": info.get("best_params", {}),
            "run_id": info["run_id"],
            "model_uri": info["model_uri"],
        },
        lineage={
            COMMIT_TAG: tags.get(COMMIT_TAG, UNKNOWN),
            "uncommitted_changes": tags.get(DIRTY_TAG, UNKNOWN),
            "data_source": tags.get("data_source", UNKNOWN),
            DATA_HASH_TAG: tags.get(DATA_HASH_TAG, UNKNOWN),
            "template_release": template_version(params),
        },
        data={
            "source": tags.get("data_source", UNKNOWN),
            "dvc_hash": tags.get(DATA_HASH_TAG, UNKNOWN),
            "training_rows": profile.get("rows"),
            "evaluation_rows": len(y),
            "evaluation_label_rate": round(float(y.mean()), 6) if len(y) else None,
            "split": f"held out at random: test_size {params.featurize.test_size:g}, seed {params.featurize.seed}",
            "time_range": "not recorded: the data contract (data.columns) has no time column",
        },
        metrics=[
            {
                "name": name,
                "value": value,
                "criterion": criteria[name].describe() if name in criteria else "",
                "passed": criteria[name].violation(value) is None if name in criteria else None,
            }
            for name, value in overall.items()
        ],
        decision_threshold=params.evaluate.decision_threshold,
        factors=list(params.evaluate.slice_by),
        slices=slices,
        fairness=fairness,
        calibration_report=card.calibration(y, prob),
        roc=card.roc_points(y, prob),
        drift_reference=card.drift_summary(profile),
    )


def log_card(info: dict[str, Any], params: Params) -> None:
    """The card with the run (model_card/) and inside the logged model's folder, which a registered version's
    storage URI points at: a server, the storage initializer and promotion find it there."""
    with tempfile.TemporaryDirectory(prefix="model-card-") as folder:
        for name, source in ((card.JSON_FILE, "card"), (card.MARKDOWN_FILE, "card_markdown")):
            (Path(folder) / name).write_bytes(params.path(source).read_bytes())
        mlflow.log_artifacts(folder, artifact_path="model_card")
        model_id = str(info["model_uri"]).removeprefix("models:/")
        mlflow.MlflowClient().log_model_artifacts(model_id, folder)


def main(params: Params) -> str:
    check_criteria_names(params)
    card.read_text(params.path("card_text"))  # a card text that cannot be read stops the stage before it writes
    test = read_table(params.path("test"), produced_by="featurize")
    features, label = split_xy(test, params)
    model = mlflow.sklearn.load_model(str(params.path("model")))
    prob = model.predict_proba(features)[:, 1]
    y = label.to_numpy()

    overall = score(y, prob, params.evaluate.decision_threshold)
    slices = slice_report(features, y, prob, params)
    failures = gate(overall, slices, params)
    fairness = fairness_results(slices, params)
    info = read_json(params.path("model_info"), "train")

    write_json({**overall, "rows": len(test)}, params.path("metrics"))
    write_json(slices, params.path("slices"))
    write_json(
        {"passed": not failures, "failures": failures, "fairness": fairness, "run_id": info["run_id"]},
        params.path("gate"),
    )
    write_plots(y, prob, params)

    configure(params)
    with mlflow.start_run(run_id=info["run_id"]):
        mlflow.log_metrics({f"test_{name}": value for name, value in overall.items()})
        mlflow.set_tag("gate", "passed" if not failures else "failed")
        for name in ("metrics", "slices", "gate", "confusion", "roc"):
            mlflow.log_artifact(str(params.path(name)), artifact_path="evaluation")
        built = model_card(params, info, overall, slices, fairness, y, prob)
        write_json(built, params.path("card"))
        params.path("card_markdown").write_text(card.markdown(built), encoding="utf-8")
        log_card(info, params)
        incomplete = card.problems(built)

    verdict = "meets the success and fairness criteria"
    if failures:
        verdict = "FAILS its criteria:\n  " + "\n  ".join(failures)
    shown = ", ".join(f"{k} {v:.4f}" for k, v in overall.items() if k in params.evaluate.success_criteria)
    card_note = f"model card {params.paths.card_markdown}"
    if incomplete:
        card_note += " is INCOMPLETE, so promotion refuses the model:\n  " + "\n  ".join(incomplete)
    return f"held-out {shown}; model {verdict}; {card_note}"
