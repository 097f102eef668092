"""The server's Prometheus metrics: requests by status, latency, predicted and outlier rows, the model served."""

from __future__ import annotations

import os
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess

LATENCY_BUCKETS = (0.002, 0.004, 0.006, 0.008, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass
class Metrics:
    registry: CollectorRegistry
    requests: Counter
    duration: Histogram
    rows: Counter
    outliers: Counter
    info: Gauge
    dropped: Counter


def exposition() -> CollectorRegistry | None:
    """With several workers (PROMETHEUS_MULTIPROC_DIR set), /metrics reads every worker's files and sums them."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return None
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def make_metrics() -> Metrics:
    """A registry per app, so tests and several apps in one process do not share counters.

    Under several workers, the values live in files shared by all of them, and the registry
    /metrics answers from is the collector of those files.
    """
    registry = CollectorRegistry()
    metrics = Metrics(
        registry=registry,
        requests=Counter(
            "model_server_requests", "Inference requests by HTTP status code", ["model", "code"], registry=registry
        ),
        duration=Histogram(
            "model_server_request_duration_seconds",
            "Inference request latency, parsing and prediction included",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ),
        rows=Counter("model_server_predicted_rows", "Rows predicted", ["model"], registry=registry),
        outliers=Counter(
            "model_server_outlier_rows", "Predicted rows unlike the training data", ["model"], registry=registry
        ),
        info=Gauge(
            "model_server_model_info",
            "The model being served",
            ["model", "version", "uri"],
            registry=registry,
            multiprocess_mode="max",
        ),
        dropped=Counter(
            "model_server_monitoring_dropped_rows",
            "Predicted rows not logged, by reason: queue_full (neither scored nor logged: monitoring fell behind), "
            "write_error (the input log could not be written), schema (rows not fitting the model's inputs)",
            ["model", "reason"],
            registry=registry,
        ),
    )
    metrics.registry = exposition() or registry
    return metrics
