"""Evaluate stage: held-out metrics, the slice (bias) report, and the gate of success and fairness criteria."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from sklearn import metrics as skm

from ..config import FairnessBound, Params
from ..errors import ParamsError
from ..files import read_json, read_table, write_json
from ..registry import configure
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


def fairness_results(slices: list[dict[str, Any]], params: Params) -> list[dict[str, Any]]:
    """Each evaluate.fairness bound judged on the slices of at least min_slice_size rows."""
    return [
        _judge(index, bound, slices, params.evaluate.min_slice_size)
        for index, bound in enumerate(params.evaluate.fairness)
    ]


def _judge(index: int, bound: FairnessBound, slices: list[dict[str, Any]], min_rows: int) -> dict[str, Any]:
    field = f"evaluate.fairness.{index}"
    result: dict[str, Any] = {"criterion": bound.name, "field": field, "value": None, "passed": True, "problem": ""}
    large = [s for s in slices if s["slice"] == bound.column and s["rows"] >= min_rows]
    scored = [s for s in large if s.get(bound.metric) is not None]
    if len(large) >= 2 and not scored:
        # A slice report recorded before the metric existed cannot show the bound holds.
        result.update(passed=False, problem=f"the slice report records no {bound.metric} for {bound.column} slices "
                      f"({field}): evaluate and register the model again")  # fmt: skip
        return result
    if len(scored) < 2:
        result["problem"] = f"not judged: fewer than two {bound.column} slices of at least {min_rows} rows"
        return result
    worst = min(scored, key=lambda s: s[bound.metric])
    best = max(scored, key=lambda s: s[bound.metric])
    low, high = worst[bound.metric], best[bound.metric]
    pair = f"{best['value']} {high:.4f} vs {worst['value']} {low:.4f}"
    if bound.max_difference is not None:
        value = round(high - low, 6)
        if value > bound.max_difference:
            result["problem"] = (
                f"{bound.metric} differs by {value:.4f} across {bound.column} slices ({pair}), "
                f"above {field}.max_difference {bound.max_difference:g}"
            )
    else:
        value = round(low / high, 6) if high > 0 else 1.0
        if value < bound.min_ratio:
            result["problem"] = (
                f"{bound.metric} of the worst {bound.column} slice is {value:.4f} of the best ({pair}), "
                f"below {field}.min_ratio {bound.min_ratio:g}"
            )
    result.update(value=value, best=best["value"], worst=worst["value"], passed=not result["problem"])
    return result


def gate(overall: dict[str, float], slices: list[dict[str, Any]], params: Params) -> list[str]:
    """Why the model fails the success or fairness criteria; empty when it passes."""
    failures = []
    for name, bound in params.evaluate.success_criteria.items():
        problem = bound.violation(overall[name])
        if problem:
            failures.append(f"{name} {problem} (evaluate.success_criteria.{name})")
    failures += [r["problem"] for r in fairness_results(slices, params) if not r["passed"]]
    return failures


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


def main(params: Params) -> str:
    check_criteria_names(params)
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

    verdict = "meets the success and fairness criteria"
    if failures:
        verdict = "FAILS its criteria:\n  " + "\n  ".join(failures)
    shown = ", ".join(f"{k} {v:.4f}" for k, v in overall.items() if k in params.evaluate.success_criteria)
    return f"held-out {shown}; model {verdict}"
