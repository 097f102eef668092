"""Data drift: per-feature distances of the current rows from the reference profile, and the drift share."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy.spatial.distance import jensenshannon

from ..config import Monitor
from .reference import MISSING


def numeric_from_quantiles(spec: dict[str, Any], current: np.ndarray | None) -> float:
    """Wasserstein-1 distance between current and reference quantiles, in reference std units; inf without values."""
    if current is None:
        return math.inf
    reference = np.asarray(spec["quantiles"])
    return float(np.mean(np.abs(reference - current)) / spec["std"])


def categorical_from_frequencies(spec: dict[str, Any], current: dict[str, float]) -> float:
    """Jensen-Shannon distance (base 2, 0 to 1) between reference and current category frequencies."""
    categories = sorted(set(spec["frequencies"]) | set(current))
    p = np.array([spec["frequencies"].get(c, 0.0) for c in categories])
    q = np.array([float(current.get(c, 0.0)) for c in categories])
    return float(jensenshannon(p, q, base=2))


def numeric_distance(spec: dict[str, Any], values: pd.Series) -> float:
    present = values.dropna().to_numpy(dtype=float)
    current = np.quantile(present, np.linspace(0, 1, len(spec["quantiles"]))) if len(present) else None
    return numeric_from_quantiles(spec, current)


def categorical_distance(spec: dict[str, Any], values: pd.Series) -> float:
    frequencies = values.astype("string").fillna(MISSING).value_counts(normalize=True)
    return categorical_from_frequencies(spec, {str(k): float(v) for k, v in frequencies.items()})


def verdict(profile: dict[str, Any], distances: dict[str, float], rows: int, settings: Monitor) -> dict[str, Any]:
    """Which features drifted (distance above its threshold), the drift share, and whether it is a breach."""
    features = {}
    for name, spec in profile["features"].items():
        numeric = spec["kind"] == "numeric"
        threshold = settings.numeric_threshold if numeric else settings.categorical_threshold
        distance = distances[name]
        features[name] = {
            "method": "wasserstein" if numeric else "jensen-shannon",
            "distance": round(distance, 6),
            "threshold": threshold,
            "drifted": distance > threshold,
        }
    drifted = sorted(name for name, f in features.items() if f["drifted"])
    share = len(drifted) / len(features)
    return {
        "rows": rows,
        "reference_rows": profile["rows"],
        "features": features,
        "drifted": drifted,
        "drift_share": round(share, 6),
        "max_drift_share": settings.max_drift_share,
        "breach": share > settings.max_drift_share,
    }


def drift(profile: dict[str, Any], current: pd.DataFrame, settings: Monitor) -> dict[str, Any]:
    """Per-feature drift of rows held in memory; streaming.py gives the same verdict over any number of rows."""
    distances = {
        name: numeric_distance(spec, current[name])
        if spec["kind"] == "numeric"
        else categorical_distance(spec, current[name])
        for name, spec in profile["features"].items()
    }
    return verdict(profile, distances, len(current), settings)
