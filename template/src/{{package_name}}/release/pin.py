"""The model pin of an environment: deploy/overlays/<env>/model.yaml, the only place a model version is written."""

from __future__ import annotations

import io
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ..config import Params
from ..errors import ParamsError, PinMismatch
from ..lineage import ANNOTATION_PREFIX, COMMIT_TAG, LINEAGE, annotation, is_commit_id

if TYPE_CHECKING:  # the registry imports MLflow; reading a pin must not
    from ..registry import Version

PIN_KIND = "ModelPin"
# What an unpinned environment's pin holds (kustomize copies it as it is; an empty value would become null).
UNPINNED = "none"
# Why a version that scores worse than the champion was pinned on purpose (a rollback);
# the PR review sees it, and `promote --check` accepts the worse score only with it.
REASON_KEY = ANNOTATION_PREFIX + "allow-worse-reason"


@dataclass(frozen=True)
class Pin:
    path: Path
    model: str
    version: str
    storage_uri: str
    # By MLflow name (lineage.LINEAGE); the file holds them as annotations.
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
        lineage={name: str(annotations.get(annotation(name), "")) for name in LINEAGE},
        serving=serving,
        reason=str(annotations.get(REASON_KEY) or ""),
        image="" if str(spec.get("image") or UNPINNED) == UNPINNED else str(spec["image"]),
    )


def image_for(params: Params, version: Version, lineage: dict[str, str]) -> str:
    """The image that serves `version`; refused when the version records no commit, so no image can match it."""
    commit = lineage[COMMIT_TAG]
    if not is_commit_id(commit):
        raise PinMismatch(
            f"{version.model} version {version.number} records no git commit ({commit!r}), so no image is built "
            "for it: register models trained from a commit (make all in a git checkout, or the training workflow)"
        )
    return pinned_image(params, commit)


def pinned_text(text: str, version: Version, lineage: dict[str, str], reason: str, image: str) -> str:
    """The pin's YAML with `version` and its `image` pinned, serving on; comments and layout kept (ruamel)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.scalarstring import DoubleQuotedScalarString as Quoted

    round_trip = YAML()
    round_trip.preserve_quotes = True
    round_trip.width = 4096
    round_trip.indent(mapping=2, sequence=4, offset=2)
    doc = round_trip.load(text)
    spec = doc["spec"]
    # Quoted: kustomize copies the values as strings, and "3" must not become the number 3.
    spec["version"] = Quoted(version.number)
    spec["storageUri"] = Quoted(version.storage_uri)
    spec["image"] = Quoted(image)
    if "suspendDrift" in spec:
        spec["suspendDrift"] = False
    if "stopped" in spec:
        spec["stopped"] = Quoted("false")
    elif not (str(spec.get("replicas", 0)).isdigit() and int(spec.get("replicas", 0)) > 0):
        spec["replicas"] = 1
    metadata = doc.setdefault("metadata", {})
    if metadata.get("annotations") is None:
        metadata["annotations"] = {}
    annotations = metadata["annotations"]
    for name, value in lineage.items():
        annotations[annotation(name)] = Quoted(value)
    if reason:
        annotations[REASON_KEY] = Quoted(reason)
    else:
        annotations.pop(REASON_KEY, None)
    out = io.StringIO()
    round_trip.dump(doc, out)
    return out.getvalue()


def git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)


def pin_at(params: Params, ref: str, env: str) -> Pin | None:
    """The pin of `env` in git at `ref`; None when that commit has no such file (a new environment)."""
    relative = pin_path(params, env).relative_to(params.root).as_posix()
    shown = git(params.root, "show", f"{ref}:{relative}")
    return parse_pin(params, shown.stdout, f"{ref}:{relative}") if shown.returncode == 0 else None


def pin_state(pin: Pin | None) -> tuple[Any, ...] | None:
    return (
        None
        if pin is None
        else (pin.model, pin.version, pin.storage_uri, pin.lineage, pin.serving, pin.reason, pin.image)
    )
