"""What a workflow run by `pipeline run-local` is given: its parameters, its store, each container's environment.

Some workflow parameters have a local meaning (the commit, the tracking store, the overrides);
variables the cluster reads from secrets are taken from this environment, and listed.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from unittest import mock

from ..config import OVERRIDES_ENV, PARAMS_FILE, load_params
from ..errors import ParamsError
from .expressions import substitute

# Workflow parameters that have a local meaning (blocks.workflow_parameters declares them).
REVISION, OVERRIDES, TRACKING_URI = "revision", "params-overrides", "mlflow-tracking-uri"


def assignments(items: Sequence[str], flag: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ParamsError(f"{flag} {item!r} is not NAME=VALUE")
        pairs[key] = value
    return pairs


def workflow_parameters(
    root: Path, spec: dict[str, Any], overrides: dict[str, Any], given: dict[str, str]
) -> dict[str, str]:
    """Each workflow parameter's value for a run here: -p, else the local meaning, else the YAML's default."""
    from ..lineage import git_commit
    from ..registry import tracking_uri

    declared = {p["name"]: p.get("value") for p in (spec.get("arguments") or {}).get("parameters") or []}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise ParamsError(f"-p {', '.join(unknown)}: no such workflow parameter (declared: {', '.join(declared)})")
    local: dict[str, str] = {}
    if REVISION in declared:
        # The commit the image would be built from: this work tree's HEAD.
        local[REVISION] = git_commit(root)
    if TRACKING_URI in declared:
        # The tracking store `make all` uses: MLFLOW_TRACKING_URI, else params.yaml resolved in this
        # project; never the cluster's in-cluster URL.
        local[TRACKING_URI] = tracking_uri(load_params(root / PARAMS_FILE))
    if overrides and OVERRIDES not in declared:
        raise ParamsError(f"--set needs the workflow parameter {OVERRIDES}, which this workflow does not declare")
    if overrides:
        local[OVERRIDES] = json.dumps(overrides)
    elif os.environ.get(OVERRIDES_ENV, "").strip():
        local[OVERRIDES] = os.environ[OVERRIDES_ENV]
    values = {}
    for name, default in declared.items():
        value = given.get(name, local.get(name) if name in local else default)
        if value is None:
            raise ParamsError(f"workflow parameter {name} has no value: pass -p {name}=VALUE")
        values[name] = str(value)
    return values


def prepare_store(root: Path, parameters: dict[str, str], artifacts: Path | None = None) -> None:
    """Create the experiment beside a local SQLite store, as `make all` does, before any task logs to it.

    Otherwise the first task would create it with artifacts under its own workspace. `artifacts`: where
    its artifacts go instead of the project's mlartifacts (a store of the run's own)."""
    uri = parameters.get(TRACKING_URI, "")
    if not uri.startswith("sqlite:"):
        return
    import logging

    from ..registry import configure, connect

    # MLflow announces creating its tables; the run's own lines are what this command prints.
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    with mock.patch.dict(
        os.environ, {"MLFLOW_TRACKING_URI": uri, OVERRIDES_ENV: parameters.get(OVERRIDES, "") or "{}"}
    ):
        params = load_params(root / PARAMS_FILE)
        if artifacts is not None:
            import mlflow

            connect(params)
            if mlflow.get_experiment_by_name(params.mlflow.experiment) is None:
                mlflow.create_experiment(params.mlflow.experiment, artifact_location=artifacts.as_uri())
        configure(params)


def secret_notes(templates: dict[str, dict[str, Any]]) -> list[str]:
    """One line per variable a container reads from the cluster (a secret, a config map), and what happens here."""
    notes = {}
    for template in templates.values():
        for var in (template.get("container") or {}).get("env") or []:
            source = var.get("valueFrom")
            if "value" in var or not source:
                continue
            kind, ref = next(iter(source.items()))
            ref = ref if isinstance(ref, dict) else {}
            what = f"{kind} {ref.get('name', '?')}/{ref.get('key', '?')}"
            here = "taken from this environment" if var["name"] in os.environ else "not set here, left unset"
            notes[var["name"]] = f"env {var['name']} ({what}) is not read from the cluster: {here}"
    return list(notes.values())


def environment(container: dict[str, Any], values: dict[str, Any], where: str) -> dict[str, str]:
    """This process's environment (PATH with the project environment first, as the image has it) plus the env."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    for var in container.get("env") or []:
        if "value" in var:
            env[var["name"]] = substitute(str(var["value"]), values, f"{where} env {var['name']}")
        elif var["name"] not in os.environ:
            env.pop(var["name"], None)
    return env
