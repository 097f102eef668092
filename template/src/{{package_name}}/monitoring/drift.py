"""Data drift: per-feature distances of the current rows from the reference profile, and the drift share."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy.spatial.distance import jensenshannon

from ..config import Monitor
from .reference import MISSING


def numeric_distance(spec: dict[str, Any], values: pd.Series) -> float:
    """Wasserstein-1 distance between the current values and the reference quantiles, in reference std units."""
    present = values.dropna().to_numpy(dtype=float)
    if not len(present):
        return math.inf
    reference = np.asarray(spec["quantiles"])
    current = np.quantile(present, np.linspace(0, 1, len(reference)))
    return float(np.mean(np.abs(reference - current)) / spec["std"])


def categorical_distance(spec: dict[str, Any], values: pd.Series) -> float:
    """Jensen-Shannon distance (base 2, 0 to 1) between reference and current category frequencies."""
    current = values.astype("string").fillna(MISSING).value_counts(normalize=True)
    categories = sorted(set(spec["frequencies"]) | set(current.index))
    p = np.array([spec["frequencies"].get(c, 0.0) for c in categories])
    q = np.array([float(current.get(c, 0.0)) for c in categories])
    return float(jensenshannon(p, q, base=2))


def drift(profile: dict[str, Any], current: pd.DataFrame, settings: Monitor) -> dict[str, Any]:
    """Per-feature drift and the share of features that drifted; a breach when the share is too high."""
    features = {}
    for name, spec in profile["features"].items():
        if spec["kind"] == "numeric":
            distance, threshold, method = (
                numeric_distance(spec, current[name]),
                settings.numeric_threshold,
                "wasserstein",
            )
        else:
            distance, threshold = categorical_distance(spec, current[name]), settings.categorical_threshold
            method = "jensen-shannon"
        features[name] = {"method": method, "distance": round(distance, 6), "threshold": threshold}
        features[name]["drifted"] = distance > threshold
    drifted = sorted(name for name, f in features.items() if f["drifted"])
    share = len(drifted) / len(features)
    return {
        "rows": len(current),
        "reference_rows": profile["rows"],
        "features": features,
        "drifted": drifted,
        "drift_share": round(share, 6),
        "max_drift_share": settings.max_drift_share,
        "breach": share > settings.max_drift_share,
    }
