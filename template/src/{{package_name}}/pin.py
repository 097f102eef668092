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


@dataclass(frozen=True)
class Pin:
    path: Path
    model: str
    version: str
    storage_uri: str
    lineage: dict[str, str]


def pin_path(params: Params, env: str) -> Path:
    return params.root / params.deploy.overlays / env / "model.yaml"


def read_pin(params: Params, env: str) -> Pin:
    """The pin of `env`; ParamsError naming the file and the field when it is missing or wrong."""
    if env not in params.deploy.environments:
        raise ParamsError(f"unknown environment '{env}': use one of {', '.join(params.deploy.environments)}")
    path = pin_path(params, env)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParamsError(f"{path} not found: every environment needs its pin file") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(doc, dict) or doc.get("kind") != PIN_KIND or not isinstance(doc.get("spec"), dict):
        raise ParamsError(f"{path} must be a {PIN_KIND} with a spec (model, version, storageUri)")
    spec = doc["spec"]
    annotations = (doc.get("metadata") or {}).get("annotations") or {}
    return Pin(
        path=path,
        model=str(spec.get("model") or params.registry.model_name),
        version="" if str(spec.get("version") or UNPINNED) == UNPINNED else str(spec["version"]),
        storage_uri="" if str(spec.get("storageUri") or UNPINNED) == UNPINNED else str(spec["storageUri"]),
        lineage={key: str(annotations.get(ANNOTATION_PREFIX + key, "")) for key in LINEAGE_KEYS},
    )
