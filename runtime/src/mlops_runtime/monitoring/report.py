"""What a check leaves behind: the HTML report, Prometheus gauges (textfile or Pushgateway), GitHub dispatch."""

from __future__ import annotations

import base64
import html
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..config import server_timeout
from ..errors import ParamsError, SubmitError
from .streaming import CurrentStats


def _plot(ax: Any, name: str, spec: dict[str, Any], current: Any) -> None:
    """Reference against current: step histograms for a number (`current` is (values, weights)), bars for a category."""
    if spec["kind"] == "numeric":
        reference = np.asarray(spec["quantiles"])
        values, weights = current
        bins = np.histogram_bin_edges(np.concatenate([reference, values[weights > 0]]), bins=30)
        ax.stairs(np.histogram(reference, bins=bins, density=True)[0], bins, fill=True, alpha=0.55, label="reference")
        if weights.sum():
            density = np.histogram(values, bins=bins, weights=weights, density=True)[0]
            ax.stairs(density, bins, fill=True, alpha=0.55, label="current")
    else:
        categories = sorted(set(spec["frequencies"]) | set(current))
        x = np.arange(len(categories))
        ax.bar(x - 0.2, [spec["frequencies"].get(c, 0) for c in categories], 0.4, label="reference")
        ax.bar(x + 0.2, [float(current.get(c, 0)) for c in categories], 0.4, label="current")
        ax.set_xticks(x, categories, rotation=30, ha="right", fontsize=7)
    ax.set_title(name, fontsize=9)
    ax.legend(fontsize=7)


def _figures(names: list[str], profile: dict[str, Any], shown: dict[str, Any]) -> str:
    """Every feature's plot in one PNG (one render, not one per feature: the report of a wide table stays quick)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    columns = min(4, len(names))
    rows = -(-len(names) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 2.6 * rows), dpi=72, squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        _plot(ax, name, profile["features"][name], shown[name])
    for ax in list(axes.flat)[len(names) :]:
        ax.set_visible(False)
    # Fixed spacing: tight_layout measures every tick label and costs more than drawing them.
    fig.subplots_adjust(left=0.04, right=0.99, top=1 - 0.35 / rows, bottom=0.5 / rows, wspace=0.25, hspace=0.75)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def distributions(profile: dict[str, Any], stats: CurrentStats) -> dict[str, Any]:
    """What the plots show of the current rows: weighted grid points for numbers, frequencies for categories."""
    shown: dict[str, Any] = {}
    for name, spec in profile["features"].items():
        if spec["kind"] == "numeric":
            numbers = stats.numeric[name]
            centers = (numbers.edges[:-1] + numbers.edges[1:]) / 2
            low = numbers.low if np.isfinite(numbers.low) else numbers.edges[0]
            high = numbers.high if np.isfinite(numbers.high) else numbers.edges[-1]
            values = np.concatenate([[low], centers, [high]])
            shown[name] = (values, np.concatenate([[numbers.below], numbers.counts, [numbers.above]]).astype(float))
        else:
            shown[name] = stats.frequencies(name)
    return shown


def html_report(result: dict[str, Any], profile: dict[str, Any], stats: CurrentStats, title: str) -> str:
    """One page: the verdict, a table of features (drifted first), reference-vs-current plots."""
    order = sorted(result["features"], key=lambda n: (not result["features"][n]["drifted"], n))
    rows = "".join(
        f"<tr class={'drift' if f['drifted'] else 'ok'}><td>{html.escape(n)}</td><td>{f['method']}</td>"
        f"<td>{f['distance']:.4f}</td><td>{f['threshold']}</td><td>{'yes' if f['drifted'] else 'no'}</td></tr>"
        for n in order
        for f in [result["features"][n]]
    )
    png = _figures(order, profile, distributions(profile, stats))
    alt = "reference and current distribution of each feature"
    figures = f'<figure><img alt="{alt}" src="data:image/png;base64,{png}"></figure>'
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
