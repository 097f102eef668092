"""The model pin of an environment: deploy/overlays/<env>/model.yaml, the only place a model version is written."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from .config import Params
from .errors import ParamsError

PIN_KIND = "ModelPin"
# What an unpinned environment's pin holds (kustomize copies it as it is; an empty value would become null).
UNPINNED = "none"
# Lineage annotations on the pin; kustomize copies them onto the served objects.
LINEAGE_KEYS = ("git-commit", "mlflow-run", "dvc-data-hash", "template-version")
ANNOTATION_PREFIX = "model.mlops/"
# Why a version that scores worse than the champion was pinned on purpose (a rollback);
# the PR review sees it, and `promote --check` accepts the worse score only with it.
REASON_KEY = "allow-worse-reason"


@dataclass(frozen=True)
class Pin:
    path: Path
    model: str
    version: str
    storage_uri: str
    lineage: dict[str, str]
    # Whether the serving switch is on: `stopped: "false"` (KServe) or `replicas` > 0 (Deployment).
    serving: bool = False
    reason: str = ""
    # The image every workload of the environment runs ("" while unpinned).
    image: str = ""


def pinned_image(params: Params, commit: str) -> str:
    """The image a version is served with: the project image built from the commit that trained it."""
    return f"{params.argo.image}:{commit}"


def pin_path(params: Params, env: str) -> Path:
    return params.root / params.deploy.overlays / env / "model.yaml"


def read_pin(params: Params, env: str) -> Pin:
    """The pin of `env`; ParamsError naming the file and the field when it is missing or wrong."""
    if env not in params.deploy.environments:
        raise ParamsError(f"unknown environment '{env}': use one of {', '.join(params.deploy.environments)}")
    path = pin_path(params, env)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParamsError(f"{path} not found: every environment needs its pin file") from None
    return parse_pin(params, text, path)


def parse_pin(params: Params, text: str, path: Path | str) -> Pin:
    """A pin from its YAML text; `path` names it in messages (a file, or `REF:file` from git)."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(doc, dict) or doc.get("kind") != PIN_KIND or not isinstance(doc.get("spec"), dict):
        raise ParamsError(f"{path} must be a {PIN_KIND} with a spec (model, version, storageUri)")
    spec = doc["spec"]
    annotations = (doc.get("metadata") or {}).get("annotations") or {}
    if "stopped" in spec:
        serving = str(spec["stopped"]).lower() == "false"
    else:
        serving = str(spec.get("replicas", 0)).isdigit() and int(spec.get("replicas", 0)) > 0
    return Pin(
        path=Path(path),
        model=str(spec.get("model") or params.registry.model_name),
        version="" if str(spec.get("version") or UNPINNED) == UNPINNED else str(spec["version"]),
        storage_uri="" if str(spec.get("storageUri") or UNPINNED) == UNPINNED else str(spec["storageUri"]),
        lineage={key: str(annotations.get(ANNOTATION_PREFIX + key, "")) for key in LINEAGE_KEYS},
        serving=serving,
        reason=str(annotations.get(ANNOTATION_PREFIX + REASON_KEY) or ""),
        image="" if str(spec.get("image") or UNPINNED) == UNPINNED else str(spec["image"]),
    )
