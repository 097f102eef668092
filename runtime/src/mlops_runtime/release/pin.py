"""The model pin of an environment: deploy/overlays/<env>/model.yaml, the only place a model version is written."""

from __future__ import annotations

import io
import re
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
# Kustomize never applies the pin itself (it is only a source of replacements).
LOCAL_CONFIG = "config.kubernetes.io/local-config"
PIN_API_VERSION = "model.mlops/v1alpha1"
# The pin's document, field by field: what components/pinned-model copies, and nothing else.
# Types are exact (a quoted "3", not 3): kustomize copies values as written.
TOP_FIELDS = {"apiVersion": str, "kind": str, "metadata": dict, "spec": dict}
METADATA_FIELDS = {"name": str, "annotations": dict}
SPEC_FIELDS = {
    "image": str,
    "suspendDrift": bool,
    "model": str,
    "version": str,
    "storageUri": str,
    "stopped": str,
    "replicas": int,
}
REQUIRED_SPEC = ("image", "model", "version", "storageUri")
ANNOTATIONS = {LOCAL_CONFIG, REASON_KEY, *(annotation(name) for name in LINEAGE)}
VERSION = re.compile(r"[1-9][0-9]*")


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


class _PinLoader(yaml.SafeLoader):
    """YAML as kustomize and PyYAML read alike: no anchors, aliases, merge keys or duplicate keys.

    On a duplicate key PyYAML keeps the last value and kustomize the first, so the gate
    and the deployer would read two documents; anchors are refused as they are met,
    before any alias is expanded, so a pin of nested aliases costs no memory.
    """

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise yaml.MarkedYAMLError(
                problem="anchors and aliases (&name, *name) are not allowed in a pin: write every value out",
                problem_mark=event.start_mark,
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key, _ in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                raise yaml.MarkedYAMLError(
                    problem="only plain keys are allowed in a pin (no merge keys `<<` or complex keys)",
                    problem_mark=key.start_mark,
                )
            if key.value in seen:
                raise yaml.MarkedYAMLError(
                    problem=f"duplicate key {key.value!r}: kustomize would read the first one and "
                    "this gate the last; keep one",
                    problem_mark=key.start_mark,
                )
            seen.add(key.value)
        return super().construct_mapping(node, deep=deep)


def load_pin_yaml(text: str, path: Path | str) -> Any:
    """The one document of a pin, read strictly (_PinLoader); ParamsError naming the file and line."""
    stream = io.StringIO(text)
    stream.name = str(path)  # the file, not "<unicode string>", in the message's position
    try:
        return yaml.load(stream, Loader=_PinLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path} is not a valid pin: {exc}") from None


def _fields(path: Path | str, where: str, mapping: dict[str, Any], fields: dict[str, type]) -> None:
    """Refuse fields `fields` does not list and values of another type, naming the field."""
    for key, value in mapping.items():
        if key not in fields:
            raise ParamsError(
                f"{path}: unknown field {where}{key}: a pin holds only {', '.join(where + name for name in fields)}"
            )
        wanted = fields[key]
        if not isinstance(value, wanted) or (wanted is int and isinstance(value, bool)):
            kind = {str: "a quoted string", bool: "true or false", int: "a whole number", dict: "a mapping"}[wanted]
            raise ParamsError(f"{path}: {where}{key} is {value!r}, it must be {kind}")


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
    """A pin from its YAML text; `path` names it in messages (a file, or `REF:file` from git).

    Read as kustomize reads it: one document, each field once, only the fields the
    pinned-model component copies, each of its type, and the model params.yaml registers.
    """
    doc = load_pin_yaml(text, path)
    if not isinstance(doc, dict) or doc.get("kind") != PIN_KIND or not isinstance(doc.get("spec"), dict):
        raise ParamsError(f"{path} must be a {PIN_KIND} with a spec (model, version, storageUri)")
    _fields(path, "", doc, TOP_FIELDS)
    metadata = doc.get("metadata") or {}
    _fields(path, "metadata.", metadata, METADATA_FIELDS)
    annotations = metadata.get("annotations") or {}
    _fields(path, "metadata.annotations.", annotations, dict.fromkeys(sorted(ANNOTATIONS), str))
    spec = doc["spec"]
    _fields(path, "spec.", spec, SPEC_FIELDS)
    wrong = [f"apiVersion must be {PIN_API_VERSION!r}"] * (doc.get("apiVersion") != PIN_API_VERSION)
    wrong += ["metadata.name must be 'model' (components/pinned-model reads the pin by that name)"] * (
        metadata.get("name") != "model"
    )
    wrong += [f'metadata.annotations.{LOCAL_CONFIG} must be "true", or kustomize applies the pin itself'] * (
        annotations.get(LOCAL_CONFIG) != "true"
    )
    wrong += [f"spec.{name} is missing" for name in REQUIRED_SPEC if name not in spec]
    wrong += ["spec needs one serving switch: stopped (KServe) or replicas (Deployment)"] * (
        ("stopped" in spec) == ("replicas" in spec)
    )
    if "stopped" in spec and spec["stopped"] not in ("true", "false"):
        wrong.append(f'spec.stopped is {spec["stopped"]!r}: write "true" or "false"')
    if spec.get("replicas", 0) < 0:
        wrong.append(f"spec.replicas is {spec['replicas']}: write 0 or more")
    version = spec.get("version", UNPINNED)
    if version != UNPINNED and not VERSION.fullmatch(version):
        wrong.append(f'spec.version is {version!r}: write a registry version number such as "3", or "none"')
    model = params.registry.model_name
    if spec.get("model", model) != model:
        wrong.append(
            f"spec.model is {spec['model']!r}, but this project registers {model!r} (register.model_name in "
            "params.yaml): a pin serves only the project's own model"
        )
    if wrong:
        raise ParamsError(f"{path} is not a valid pin:\n  " + "\n  ".join(wrong))
    serving = spec["stopped"] == "false" if "stopped" in spec else spec["replicas"] > 0

    def pinned(name: str) -> str:
        return "" if spec[name] == UNPINNED else spec[name]

    return Pin(
        path=Path(path),
        model=model,
        version=pinned("version"),
        storage_uri=pinned("storageUri"),
        lineage={name: annotations.get(annotation(name), "") for name in LINEAGE},
        serving=serving,
        reason=annotations.get(REASON_KEY, ""),
        image=pinned("image"),
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
