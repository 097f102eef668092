"""Monitoring: reference profiles, data drift and outliers against what a model was trained on."""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from scipy.spatial.distance import jensenshannon
from sklearn.base import clone
from sklearn.ensemble import IsolationForest
from sklearn.pipeline import Pipeline

from .config import DataContract, Monitor, Params, server_timeout
from .errors import DataError, ParamsError, SubmitError
from .files import read_table
from .ingest import normalise

PROFILE_FILE = "reference_profile.json"
DETECTOR_FILE = "outlier_detector.joblib"
MISSING = "(missing)"


# --- at training -------------------------------------------------------------


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
        flagged = self.forest.predict(frame) == -1
        for name, (low, high) in self.bounds.items():
            values = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float)
            flagged |= (values < low) | (values > high)  # missing values compare False
        return flagged


def fit_outlier_detector(
    model: Pipeline, features: pd.DataFrame, contract: DataContract, contamination: float, seed: int
) -> OutlierDetector:
    """Fit the detector on the training rows; numbers may stray a quarter of their range beyond it."""
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
    joblib.dump(detector, folder / DETECTOR_FILE)
    return [str(folder / PROFILE_FILE), str(folder / DETECTOR_FILE)]


# --- reading the reference and the current data ------------------------------


def model_dir(params: Params, reference: str) -> Path:
    """A model folder: a path as given, else version number or alias of the registered model."""
    if Path(reference).is_dir():
        return Path(reference)
    import mlflow
    from mlflow.exceptions import MlflowException

    from .tracking import connect, lost

    connect(params)
    name = params.registry.model_name
    uri = f"models:/{name}/{reference}" if reference.isdigit() else f"models:/{name}@{reference}"
    try:
        return Path(mlflow.artifacts.download_artifacts(uri))
    except MlflowException as exc:
        if unanswered := lost(exc):
            raise unanswered from None
        raise ParamsError(
            f"--reference {reference}: no such version or alias of {name} in the registry "
            f"({exc.message.splitlines()[0]})"
        ) from None


def load_reference(folder: Path) -> tuple[dict[str, Any], OutlierDetector]:
    extra = folder / "extra_files"
    try:
        profile = json.loads((extra / PROFILE_FILE).read_text(encoding="utf-8"))
        detector = joblib.load(extra / DETECTOR_FILE)
    except FileNotFoundError:
        raise DataError(f"{folder} has no reference profile: retrain with this version of the project") from None
    return profile, detector


def read_current(location: str, contract: DataContract) -> pd.DataFrame:
    """The current data, cleaned as at ingest; refuses missing columns, non-numeric and infinite numbers."""
    frame = normalise(read_table(location))
    missing = [c for c in contract.features if c not in frame.columns]
    if missing:
        raise DataError(f"{location} lacks the feature column(s) {missing}: it must have {contract.features}")
    for name in contract.numeric:
        raw = frame[name]
        numbers = pd.to_numeric(raw, errors="coerce")
        bad = raw[numbers.isna() & raw.notna()]
        if len(bad):
            shown = sorted({str(v) for v in bad.head(5)})
            raise DataError(f"{location}: column {name!r} must be numeric; found {shown} in {len(bad)} row(s)")
        # The model server refuses inf too: it is a broken upstream value, not a measurement to profile.
        infinite = int(np.isinf(numbers.to_numpy(dtype=float, na_value=np.nan)).sum())
        if infinite:
            raise DataError(
                f"{location}: column {name!r} must hold finite numbers; found inf or -inf in {infinite} row(s) "
                "(leave a value empty when it is missing)"
            )
        frame[name] = numbers
    if frame.empty:
        raise DataError(f"{location} has no rows")
    return frame[contract.features]


def too_few_rows(current: pd.DataFrame, location: str, min_rows: int) -> str | None:
    """Why `current` is too small for a verdict (fewer than monitor.min_rows rows), or None."""
    if len(current) >= min_rows:
        return None
    return (
        f"{location} has {len(current)} row(s), fewer than monitor.min_rows ({min_rows}) in params.yaml: "
        "a drift or outlier share of so few rows says nothing; measure a larger sample"
    )


# --- drift -------------------------------------------------------------------


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


def outliers(detector: OutlierDetector, current: pd.DataFrame, max_share: float) -> dict[str, Any]:
    """Share of current rows the detector calls outliers; a breach above `max_share`."""
    flagged = detector.flags(current)
    share = float(flagged.mean())
    return {
        "rows": len(current),
        "outliers": int(flagged.sum()),
        "outlier_share": round(share, 6),
        "max_outlier_share": max_share,
        "breach": share > max_share,
    }


# --- reports and metrics -----------------------------------------------------


def _figure(name: str, spec: dict[str, Any], values: pd.Series) -> str:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 2.6), dpi=90)
    if spec["kind"] == "numeric":
        reference = np.asarray(spec["quantiles"])
        bins = np.histogram_bin_edges(np.concatenate([reference, values.dropna().to_numpy(float)]), bins=30)
        ax.hist(reference, bins=bins, density=True, alpha=0.55, label="reference")
        ax.hist(values.dropna(), bins=bins, density=True, alpha=0.55, label="current")
    else:
        current = values.astype("string").fillna(MISSING).value_counts(normalize=True)
        categories = sorted(set(spec["frequencies"]) | set(current.index))
        x = np.arange(len(categories))
        ax.bar(x - 0.2, [spec["frequencies"].get(c, 0) for c in categories], 0.4, label="reference")
        ax.bar(x + 0.2, [float(current.get(c, 0)) for c in categories], 0.4, label="current")
        ax.set_xticks(x, categories, rotation=30, ha="right", fontsize=7)
    ax.set_title(name, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def html_report(result: dict[str, Any], profile: dict[str, Any], current: pd.DataFrame, title: str) -> str:
    """One page: the verdict, a table of features (drifted first), reference-vs-current plots."""
    order = sorted(result["features"], key=lambda n: (not result["features"][n]["drifted"], n))
    rows = "".join(
        f"<tr class={'drift' if f['drifted'] else 'ok'}><td>{html.escape(n)}</td><td>{f['method']}</td>"
        f"<td>{f['distance']:.4f}</td><td>{f['threshold']}</td><td>{'yes' if f['drifted'] else 'no'}</td></tr>"
        for n in order
        for f in [result["features"][n]]
    )
    figures = "".join(
        f'<figure><img alt="{html.escape(n)}" src="data:image/png;base64,{png}"></figure>'
        for n in order
        for png in [_figure(n, profile["features"][n], current[n])]
    )
    verdict = "DRIFT: " + ", ".join(result["drifted"]) if result["breach"] else "No breach"
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>
body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{padding:4px 10px;border:1px solid #ccc}} tr.drift{{background:#fde2e1}}
figure{{display:inline-block;margin:4px}}</style></head><body>
<h1>{html.escape(title)}</h1><p><b>{html.escape(verdict)}</b> &mdash; {len(result["drifted"])} of
{len(result["features"])} features drifted (share {result["drift_share"]:.2f}, breach above
{result["max_drift_share"]}); {result["rows"]} current rows against {result["reference_rows"]} reference rows.</p>
<table><tr><th>feature</th><th>method</th><th>distance</th><th>threshold</th><th>drifted</th></tr>{rows}</table>
{figures}</body></html>"""


def metrics_registry(model: str, drift_result: dict[str, Any] | None, outlier_result: dict[str, Any] | None):
    """Prometheus gauges of a check, for the alerts of the monitoring component."""
    from prometheus_client import CollectorRegistry, Gauge

    registry = CollectorRegistry()
    if drift_result:
        Gauge("model_drift_share", "Share of features that drifted", ["model"], registry=registry).labels(model).set(
            drift_result["drift_share"]
        )
        per_feature = Gauge(
            "model_feature_drift", "Drift distance per feature", ["model", "feature"], registry=registry
        )
        for name, feature in drift_result["features"].items():
            per_feature.labels(model, name).set(feature["distance"])
    if outlier_result:
        Gauge("model_outlier_share", "Share of rows flagged as outliers", ["model"], registry=registry).labels(
            model
        ).set(outlier_result["outlier_share"])
    Gauge("model_drift_check_timestamp_seconds", "When the last check ran", ["model"], registry=registry).labels(
        model
    ).set_to_current_time()
    return registry


def exists(location: str) -> bool:
    """Whether a local path or a remote object (s3://..., through fsspec) is there."""
    if "://" not in location:
        return Path(location).exists()
    import fsspec

    try:
        filesystem, path = fsspec.core.url_to_fs(location)
        return filesystem.exists(path)
    except (ImportError, OSError, ValueError):
        return True  # let reading it report what is wrong


def metrics_text(registry: Any) -> str:
    """The gauges in the Prometheus text format, as node-exporter's textfile collector reads them."""
    from prometheus_client import generate_latest

    return generate_latest(registry).decode("utf-8")


def publish(registry: Any, pushgateway: str | None, job: str, namespace: str = "local", timeout: int = 30) -> list[str]:
    """Push the gauges to a Pushgateway, waiting at most `timeout` seconds; say where."""
    from prometheus_client import push_to_gateway

    done = []
    if pushgateway:
        try:
            # Grouped by namespace: each environment's alerts read only its own figures.
            push_to_gateway(
                pushgateway, job=job, registry=registry, grouping_key={"namespace": namespace}, timeout=timeout
            )
        except OSError as exc:
            raise SubmitError(f"cannot push metrics to {pushgateway} within {timeout} s: {exc}") from None
        done.append(f"metrics -> {pushgateway}")
    return done


def dispatch(result_path: Path) -> str:
    """Tell GitHub about a breach (repository_dispatch `drift-detected`) for the drift-response workflow."""
    import requests

    result = json.loads(result_path.read_text(encoding="utf-8"))
    if not result.get("breach"):
        return f"{result_path}: no breach, nothing sent"
    token, repository = os.environ.get("GITHUB_TOKEN"), os.environ.get("GITHUB_REPOSITORY")
    if not token or not repository:
        raise ParamsError("set GITHUB_TOKEN (allowed to dispatch) and GITHUB_REPOSITORY (owner/name)")
    api = os.environ.get("GITHUB_API_URL", "https://api.github.com").rstrip("/")
    payload = {
        "event_type": "drift-detected",
        "client_payload": {
            "reference": result.get("reference"),
            "current": result.get("current"),
            "drifted": result.get("drifted", []),
            "drift_share": result.get("drift_share"),
            "rows": result.get("rows"),
        },
    }
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json"}
    try:
        answer = requests.post(
            f"{api}/repos/{repository}/dispatches", json=payload, headers=headers, timeout=server_timeout()
        )
    except requests.RequestException as exc:
        raise SubmitError(f"cannot reach {api}: {exc}") from None
    if answer.status_code != 204:
        raise SubmitError(f"GitHub refused the dispatch ({answer.status_code}): {answer.text[:200]}")
    return f"sent drift-detected to {repository}"
