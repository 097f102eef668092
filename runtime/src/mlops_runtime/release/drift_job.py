"""The drift job of each environment against its alerts, the registry's alias and params.yaml, after kustomize.

An environment's thresholds.yaml is the one place of its drift job's values: the
monitoring component copies them into the CronJob and the PrometheusRule. These
checks catch what a hand edit of the built objects' sources can still break: a job
that breaches at another share than its alert fires, a job that compares with a
model other than the one its environment serves, and a params.yaml whose local
thresholds are not those of the last environment (prod), which they stand for.
"""

from __future__ import annotations

import re
from typing import Any

from ..config import Params
from ..lineage import CHAMPION_ALIAS

ALERTS = {"max_drift_share": ("ModelDataDrift", " > "), "max_outlier_share": ("ModelOutlierShareHigh", " > ")}
REFERENCE = "reference"


def drift_container(docs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The `drift` container of the built drift CronJob, or None when the overlay has no monitoring."""
    for doc in docs:
        if doc.get("kind") != "CronJob":
            continue
        containers = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"].get("containers") or []
        for container in containers:
            if container.get("name") == "drift":
                return container
    return None


def job_options(container: dict[str, Any]) -> dict[str, str]:
    """`--name=value` arguments of the container, by name, with `$(VAR)` read from its env as Kubernetes does."""
    env = {item["name"]: str(item["value"]) for item in container.get("env") or [] if "value" in item}
    options = {}
    for arg in container.get("args") or []:
        name, sep, value = str(arg).partition("=")
        if sep and name.startswith("--"):
            options[name[2:]] = re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m[1], m[0]), value)
    return options


def alert_threshold(docs: list[dict[str, Any]], alert: str, operator: str) -> str | None:
    """The number an alert's expression compares with, as the PrometheusRule writes it."""
    for doc in docs:
        if doc.get("kind") != "PrometheusRule":
            continue
        for group in doc["spec"].get("groups") or []:
            for rule in group.get("rules") or []:
                if rule.get("alert") == alert and operator in str(rule.get("expr")):
                    return str(rule["expr"]).rsplit(operator, 1)[1].strip()
    return None


def _same(left: str | float | None, right: str | float | None) -> bool:
    try:
        return left is not None and right is not None and float(left) == float(right)
    except ValueError:
        return False


def check(docs: list[dict[str, Any]], env: str, params: Params) -> list[str]:
    """What disagrees in the built overlay of `env`, one line each naming the files to change."""
    container = drift_container(docs)
    if container is None:
        return []
    thresholds = f"{params.deploy.overlays}/{env}/thresholds.yaml"
    options = job_options(container)
    problems = []
    drift_alert = alert_threshold(docs, *ALERTS["max_drift_share"])
    if not _same(options.get("max-drift-share"), drift_alert):
        problems.append(
            f"the drift job breaches above {options.get('max-drift-share')} but ModelDataDrift fires above "
            f"{drift_alert}: both must read driftShareMax of {thresholds} (components/monitoring copies it)"
        )
    alias = CHAMPION_ALIAS.format(env=env)
    if options.get(REFERENCE) != alias:
        problems.append(
            f"the drift job compares with {options.get(REFERENCE)!r}, not {alias!r}, the alias promotion keeps "
            f"on the version {env} serves: set driftReference: {alias} in {thresholds}"
        )
    if env != params.deploy.environments[-1]:
        return problems
    # params.yaml's monitor section is the last environment's, for local runs.
    cluster = {
        "max_drift_share": options.get("max-drift-share"),
        "max_outlier_share": alert_threshold(docs, *ALERTS["max_outlier_share"]),
    }
    fields = {"max_drift_share": "driftShareMax", "max_outlier_share": "outlierShareMax"}
    for key, value in cluster.items():
        local = getattr(params.monitor, key)
        if not _same(local, value):
            problems.append(
                f"monitor.{key} in params.yaml is {local} but {fields[key]} in {thresholds} is {value}: local "
                f"checks judge as {env} does, so change both to the same value"
            )
    if params.monitor.reference != options.get(REFERENCE):
        problems.append(
            f"monitor.reference in params.yaml is {params.monitor.reference!r} but {env}'s drift job compares with "
            f"{options.get(REFERENCE)!r}: set monitor.reference: {options.get(REFERENCE)}"
        )
    return problems
