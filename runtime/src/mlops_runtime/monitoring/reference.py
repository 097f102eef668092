"""The monitoring reference a model carries: its training data profile and outlier detector.

Built by the train stage and logged with the model (MLflow extra_files), so that drift and
outlier checks compare with exactly what that model was trained on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # scikit-learn is imported where a detector is fitted or loaded, not by the drift check
    from sklearn.pipeline import Pipeline

from ..config import DataContract, Params
from ..errors import DataError

PROFILE_FILE = "reference_profile.json"


DETECTOR_FILE = "outlier_detector.joblib"


MISSING = "(missing)"


def build_profile(frame: pd.DataFrame, contract: DataContract, quantiles: int) -> dict[str, Any]:
    """Per-feature distributions of the training data: quantiles for numbers, frequencies for categories."""
    grid = np.linspace(0, 1, quantiles)
    features: dict[str, Any] = {}
    for name in contract.numeric:
        values = pd.to_numeric(frame[name], errors="coerce")
        present = values.dropna().to_numpy(dtype=float)
        features[name] = {
            "kind": "numeric",
            "quantiles": np.quantile(present, grid).round(6).tolist(),
            "mean": float(present.mean()),
            "std": float(present.std()) or 1.0,
            "missing": float(values.isna().mean()),
        }
    for name in contract.categorical:
        counts = frame[name].astype("string").fillna(MISSING).value_counts(normalize=True)
        features[name] = {"kind": "categorical", "frequencies": {str(k): float(v) for k, v in counts.items()}}
    return {"rows": len(frame), "features": features}


@dataclass
class OutlierDetector:
    """Flags rows unlike the training data: an IsolationForest on the model's feature transformation,
    plus the training range of each number (a forest cannot tell a value far beyond the range from
    the most extreme training value, so the range check catches those)."""

    forest: Pipeline
    bounds: dict[str, tuple[float, float]]

    def flags(self, frame: pd.DataFrame) -> np.ndarray:
        """True for each row that is an outlier."""
        text = frame.select_dtypes(include=["object", "string"]).columns
        # scikit-learn's imputers expect NaN, not pandas' NA, for a missing category.
        frame = frame.assign(**{c: frame[c].astype(object).where(frame[c].notna(), np.nan) for c in text})
        return (self.forest.predict(frame) == -1) | self.out_of_range(frame)

    def out_of_range(self, frame: pd.DataFrame | Mapping[str, np.ndarray], rows: int | None = None) -> np.ndarray:
        """True for each row with a number beyond its training range and margin (a DataFrame, or columns)."""
        flagged = np.zeros(len(frame) if rows is None else rows, dtype=bool)
        for name, (low, high) in self.bounds.items():
            values = np.asarray(pd.to_numeric(frame[name], errors="coerce"), dtype=float)
            flagged |= (values < low) | (values > high)  # missing values compare False
        return flagged


def fit_outlier_detector(
    model: Pipeline, features: pd.DataFrame, contract: DataContract, contamination: float, seed: int
) -> OutlierDetector:
    """Fit the detector on the training rows; numbers may stray a quarter of their range beyond it."""
    from sklearn.base import clone
    from sklearn.ensemble import IsolationForest
    from sklearn.pipeline import Pipeline

    forest = Pipeline(
        [
            ("features", clone(model.named_steps["features"])),
            ("forest", IsolationForest(contamination=contamination, random_state=seed, n_estimators=100)),
        ]
    )
    bounds = {}
    for name in contract.numeric:
        values = pd.to_numeric(features[name], errors="coerce")
        low, high = float(values.min()), float(values.max())
        margin = 0.25 * (high - low)
        bounds[name] = (low - margin, high + margin)
    return OutlierDetector(forest.fit(features), bounds)


def save_monitoring_files(profile: dict[str, Any], detector: OutlierDetector, folder: Path) -> list[str]:
    """Write the profile and the detector; return their paths (they travel with the model)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / PROFILE_FILE).write_text(json.dumps(profile, indent=1), encoding="utf-8")
    import joblib

    joblib.dump(detector, folder / DETECTOR_FILE)
    return [str(folder / PROFILE_FILE), str(folder / DETECTOR_FILE)]


def load_profile(folder: Path) -> dict[str, Any]:
    """The reference profile a model folder carries (all the drift check needs)."""
    try:
        return json.loads((folder / "extra_files" / PROFILE_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{folder} has no reference profile: retrain with this version of the project") from None


def load_reference(folder: Path) -> tuple[dict[str, Any], OutlierDetector]:
    """The profile and the outlier detector a model folder carries."""
    import joblib

    profile = load_profile(folder)
    try:
        detector = joblib.load(folder / "extra_files" / DETECTOR_FILE)
    except FileNotFoundError:
        raise DataError(f"{folder} has no outlier detector: retrain with this version of the project") from None
    return profile, detector


def write_reference(params: Params, model: Pipeline, features: pd.DataFrame, folder: Path) -> list[str]:
    """The reference of a model trained on `features`: built from monitor.* in params.yaml, written to `folder`."""
    profile = build_profile(features, params.data, params.monitor.profile_quantiles)
    detector = fit_outlier_detector(
        model, features, params.data, params.monitor.outlier_contamination, params.train.seed
    )
    return save_monitoring_files(profile, detector, folder)
