"""Drift monitoring: population stability index (PSI) of each feature, training data against recent inputs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .config import DataContract, Params
from .errors import DataError
from .files import read_table

BINS = 10
# Floor for empty bins, so that a category absent on one side gives a large but finite PSI.
EPSILON = 1e-4
MISSING = "__missing__"


def _shares(counts: pd.Series, index: pd.Index) -> np.ndarray:
    shares = counts.reindex(index, fill_value=0).to_numpy(dtype=float)
    total = shares.sum()
    return np.clip(shares / total if total else shares, EPSILON, None)


def psi(reference: pd.Series, current: pd.Series, numeric: bool) -> float:
    """PSI between two samples of one feature: deciles of the reference for numbers, values for categories."""
    if numeric:
        ref, cur = pd.to_numeric(reference, errors="coerce"), pd.to_numeric(current, errors="coerce")
        edges = np.unique(np.nanquantile(ref.dropna(), np.linspace(0, 1, BINS + 1))) if ref.notna().any() else []
        cuts = [-np.inf, *edges[1:-1], np.inf] if len(edges) > 2 else [-np.inf, np.inf]
        ref_bins = pd.cut(ref, cuts).astype(str).where(ref.notna(), MISSING)
        cur_bins = pd.cut(cur, cuts).astype(str).where(cur.notna(), MISSING)
    else:
        ref_bins, cur_bins = reference.astype(object).fillna(MISSING), current.astype(object).fillna(MISSING)
    index = pd.Index(sorted(set(ref_bins) | set(cur_bins), key=str))
    r, c = _shares(ref_bins.value_counts(), index), _shares(cur_bins.value_counts(), index)
    return float(np.sum((c - r) * np.log(c / r)))


def drift(reference: pd.DataFrame, current: pd.DataFrame, contract: DataContract) -> dict[str, float]:
    """PSI per feature of the data contract."""
    missing = [name for name in contract.features if name not in current.columns]
    if missing:
        raise DataError(f"the recent inputs lack the model's columns {missing}: log every input column")
    if current.empty:
        raise DataError("the recent inputs have no rows: nothing to compare yet")
    return {
        name: round(psi(reference[name], current[name], column.kind == "numeric"), 6)
        for name, column in contract.columns.items()
    }


def push(url: str, project: str, namespace: str, scores: dict[str, float]) -> None:
    """Send the scores to a Prometheus Pushgateway, grouped by project and namespace (the alerts' labels)."""
    from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

    registry = CollectorRegistry()
    gauge = Gauge("model_drift_psi", "Population stability index per feature", ["feature"], registry=registry)
    for feature, score in scores.items():
        gauge.labels(feature).set(score)
    last = Gauge("model_drift_last_run_timestamp_seconds", "When the drift job last measured", registry=registry)
    last.set(time.time())
    grouping = {"project": project, "namespace": namespace}
    try:
        push_to_gateway(url, job=f"{project}-drift", grouping_key=grouping, registry=registry, timeout=30)
    except OSError as exc:
        raise DataError(f"cannot push the drift metrics to {url}: {exc}") from None


def exists(location: str) -> bool:
    """Whether a local path or an object-store URL (through fsspec) exists."""
    if "://" not in location:
        return Path(location).is_file()
    import fsspec

    fs, path = fsspec.core.url_to_fs(location)
    return fs.exists(path)


def main(
    params: Params,
    current: str,
    reference: str | None,
    pushgateway: str | None,
    namespace: str,
    if_present: bool = False,
) -> str:
    # Before the first model serves, no inputs are logged: the scheduled job succeeds without
    # measuring rather than failing every night (and firing the stale-job alert).
    if if_present and not exists(current):
        return f"no recent inputs at {current} yet: nothing to compare"
    for location, option in ((current, "--current"), (reference, "--reference")):
        if location and "://" not in location and not Path(location).is_file():
            raise DataError(f"{location} does not exist: give {option} a CSV or Parquet file (local or s3://)")
    ref = read_table(reference or params.path("train"), produced_by=None if reference else "featurize")
    scores = drift(ref, read_table(current), params.data)
    # The MLflow experiment is named after the project: the same label the alert rules filter on.
    if pushgateway:
        push(pushgateway, params.mlflow.experiment, namespace, scores)
    worst = max(scores, key=scores.get)
    pushed = f"; pushed to {pushgateway}" if pushgateway else ""
    return f"PSI per feature {json.dumps(scores)}; highest {worst} {scores[worst]:.3f}{pushed}"
