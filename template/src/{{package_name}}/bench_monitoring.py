"""Monitoring benchmark (prints JSON): the drift check on 1,000,000 rows x 20 features, next to
two-sample KS tests on the same data, and outlier scoring per request next to prediction alone.

Run `make bench-monitor` after `make all` (the second part uses the trained model in models/).
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp

from .config import DataContract, Monitor, load_params
from .files import read_table
from .monitor import build_profile, drift, load_reference

ROWS, NUMERIC, CATEGORICAL = 1_000_000, 14, 6


def synthetic(rows: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = {f"n{i}": rng.normal(loc=shift if i == 0 else 0.0, size=rows) for i in range(NUMERIC)}
    data |= {f"c{i}": rng.choice(["a", "b", "c", "d", "e"], size=rows) for i in range(CATEGORICAL)}
    return pd.DataFrame(data)


def median_seconds(call, repeats: int = 3) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def drift_figures() -> dict[str, object]:
    columns = {f"n{i}": {"kind": "numeric"} for i in range(NUMERIC)} | {
        f"c{i}": {"kind": "categorical"} for i in range(CATEGORICAL)
    }
    contract = DataContract(label="y", columns=columns)
    reference = synthetic(200_000, seed=1)
    current = synthetic(ROWS, seed=2, shift=0.5)
    profile = build_profile(reference, contract, quantiles=200)
    settings = Monitor(
        numeric_threshold=0.15, categorical_threshold=0.15, max_drift_share=0.1,
        outlier_contamination=0.01, max_outlier_share=0.05, current="-",
    )  # fmt: skip
    result = drift(profile, current, settings)
    ours = median_seconds(lambda: drift(profile, current, settings))
    ks = median_seconds(lambda: [ks_2samp(reference[c], current[c]) for c in contract.numeric], repeats=1)
    return {
        "rows": ROWS,
        "features": NUMERIC + CATEGORICAL,
        "drift_check_s": round(ours, 3),
        "rows_per_s": round(ROWS / ours),
        "found_shifted_feature": result["drifted"] == ["n0"],
        "baseline_ks_tests_numeric_only_s": round(ks, 3),
        "ratio_drift_check_vs_ks": round(ours / ks, 2),
    }


def serving_figures(params_path: Path) -> dict[str, object]:
    import mlflow

    params = load_params(params_path)
    # The pyfunc flavour, as the model server predicts.
    model = mlflow.pyfunc.load_model(str(params.path("model")))
    _, detector = load_reference(params.path("model"))
    rows = read_table(params.path("test"), produced_by="featurize")[params.data.features].head(200)
    singles = [rows.iloc[[i]] for i in range(len(rows))]

    def per_call(call) -> float:
        for row in singles[:20]:
            call(row)
        start = time.perf_counter()
        for row in singles:
            call(row)
        return (time.perf_counter() - start) / len(singles) * 1000

    predict_ms = statistics.median(per_call(model.predict) for _ in range(3))
    score_ms = statistics.median(per_call(detector.flags) for _ in range(3))
    return {
        "predict_one_row_ms": round(predict_ms, 3),
        "outlier_scoring_one_row_ms": round(score_ms, 3),
        "ratio_scoring_vs_predict": round(score_ms / predict_ms, 2),
    }


def main() -> None:
    figures = {"machine": {"python": platform.python_version()}, "drift": drift_figures()}
    if Path("params.yaml").exists() and Path("models/model").exists():
        figures["serving"] = serving_figures(Path("params.yaml"))
    else:
        figures["serving"] = "skipped: run `make all` first (needs models/model)"
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
