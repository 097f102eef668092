"""Kubernetes manifests: build every overlay with kustomize and validate each document offline."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from ..config import Params, env_name_problem
from ..errors import ManifestError, ParamsError
from . import drift_job, served
from . import schemas as crd_schemas
from .pin import read_pin

SCHEMAS_ENV = "K8S_SCHEMAS_DIR"
# The custom-resource schemas the project carries, beside the overlays (see schemas.py).
VENDORED_SCHEMAS = "schemas"
ORIGIN = "config.kubernetes.io/origin"
# Fields a Kubernetes object may carry at its top level besides the schema's own.
TOP_LEVEL = {"apiVersion", "kind", "metadata", "spec", "status"}


@dataclass(frozen=True)
class Problem:
    """One finding: which source file and object, where in it, and what is wrong."""

    file: str
    kind: str
    name: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.kind}/{self.name}: {self.path or '(whole object)'}: {self.message}"


def kustomize_command() -> list[str]:
    """`kustomize build` if the binary is on PATH, else the kustomize built into kubectl."""
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    raise ParamsError("neither kustomize nor kubectl is on PATH: install one of them to build the manifests")


def targets(params: Params) -> list[Path]:
    """Every kustomization to build: each environment's overlay, every other overlay on disk, the Argo CD objects.

    Overlays on disk count whether params.yaml lists them or not: what Argo CD could
    apply is validated, not only what the list names.
    """
    overlays = params.root / params.deploy.overlays
    found = [overlays / env for env in params.deploy.environments]
    found += sorted(p.parent for p in overlays.glob("*/kustomization.yaml") if p.parent not in found)
    argocd = overlays.parent / "argocd"
    if argocd.is_dir():
        found.append(argocd)
    missing = [str(t) for t in found if not (t / "kustomization.yaml").is_file()]
    if missing:
        raise ParamsError(f"no kustomization.yaml in {', '.join(missing)}: check deploy.environments in params.yaml")
    return found


def build(target: Path) -> tuple[list[dict[str, Any]], Path]:
    """The documents kustomize builds from `target`, each annotated with the file it came from.

    A throwaway kustomization around the target asks kustomize for origin
    annotations, so that findings name the source file rather than the built stream.
    """
    with tempfile.TemporaryDirectory(prefix="manifests-") as tmp:
        wrapper = Path(tmp)
        relative = os.path.relpath(target.resolve(), wrapper)
        (wrapper / "kustomization.yaml").write_text(
            yaml.safe_dump({"resources": [relative], "buildMetadata": ["originAnnotations"]}), encoding="utf-8"
        )
        done = subprocess.run([*kustomize_command(), str(wrapper)], capture_output=True, text=True)
        if done.returncode != 0:
            raise ManifestError(f"{target}: kustomize cannot build it:\n{done.stderr.strip()}")
        return [doc for doc in yaml.safe_load_all(done.stdout) if doc], wrapper


def _origin(doc: dict[str, Any], wrapper: Path, root: Path, fallback: str) -> str:
    """The source file of a built document (and drop the annotation kustomize added for it)."""
    annotations = doc.get("metadata", {}).get("annotations") or {}
    origin = yaml.safe_load(annotations.pop(ORIGIN, "") or "{}") or {}
    if not annotations and "annotations" in doc.get("metadata", {}):
        del doc["metadata"]["annotations"]
    source = origin.get("path") or origin.get("configuredIn")
    if not source:
        return fallback
    path = Path(os.path.normpath(wrapper / source))
    try:
        return str(path.relative_to(root.resolve()))
    except ValueError:
        return str(path)


def _strict(schema: Any) -> Any:
    """The schema with unknown fields refused wherever it lists properties (as `kubectl --validate=strict`)."""
    if isinstance(schema, dict):
        schema = {key: _strict(value) for key, value in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    return schema


@cache
def _custom_schema(path: Path) -> Any:
    try:
        return _strict(crd_schemas.load(path))
    except crd_schemas.SchemaError as exc:
        raise ManifestError(str(exc)) from exc


def is_core(api_version: str) -> bool:
    """Built-in API groups: core (`v1`), unqualified (`apps/v1`) and *.k8s.io."""
    group = api_version.rpartition("/")[0]
    return "." not in group or group.endswith(".k8s.io")


def validate_core(doc: dict[str, Any], kubernetes_version: str) -> list[tuple[str, str]]:
    """(path, message) findings of a built-in kind, strict: unknown fields fail."""
    import kubernetes_validate

    try:
        kubernetes_validate.validate(doc, kubernetes_version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [(".".join(str(p) for p in exc.path), exc.message)]
    except kubernetes_validate.SchemaNotFoundError:
        return [("", f"{doc.get('apiVersion')} {doc.get('kind')} does not exist in Kubernetes {kubernetes_version}")]
    return []


def validate_custom(doc: dict[str, Any], schemas: Path) -> list[tuple[str, str]]:
    """(path, message) findings of a custom resource against its JSON schema, strict."""
    import jsonschema

    group, _, version = str(doc.get("apiVersion", "")).rpartition("/")
    kind = str(doc.get("kind", ""))
    path = crd_schemas.schema_file(schemas, group, kind, version)
    if path is None:
        vendor = f"manifests schemas --commit <catalog commit> --add {group}/{kind.lower()}_{version}.json"
        where = f"no schema for {group}/{version} {kind} in {schemas}"
        return [("", f"{where}: misspelt kind or apiVersion? If not, vendor its schema: {vendor}")]
    schema = _custom_schema(path)
    findings = [("", f"unknown top-level field '{key}'") for key in doc if key not in TOP_LEVEL]
    validator = jsonschema.Draft7Validator(schema)
    for error in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
        findings.append((".".join(str(p) for p in error.absolute_path), error.message))
    return findings


def validate_documents(
    docs: list[dict[str, Any]], wrapper: Path, params: Params, schemas: Path, target: str
) -> list[Problem]:
    problems = []
    for doc in docs:
        source = _origin(doc, wrapper, params.root, fallback=target)
        kind = str(doc.get("kind", "?"))
        name = str(doc.get("metadata", {}).get("name", "?"))
        if not doc.get("apiVersion") or not doc.get("kind") or name == "?":
            problems.append(Problem(source, kind, name, "", "apiVersion, kind and metadata.name are required"))
            continue
        if is_core(doc["apiVersion"]):
            findings = validate_core(doc, params.deploy.kubernetes_version)
        else:
            findings = validate_custom(doc, schemas)
        problems += [Problem(source, kind, name, path, message) for path, message in findings]
    return problems


def schemas_dir(params: Params, explicit: Path | None = None) -> Path:
    """The custom-resource schema folder: --schemas, else $K8S_SCHEMAS_DIR, else the project's deploy/schemas."""
    if explicit or os.environ.get(SCHEMAS_ENV):
        location = explicit or Path(os.environ[SCHEMAS_ENV])
        origin = "--schemas" if explicit else SCHEMAS_ENV
    else:
        location = params.root / params.deploy.overlays.parent / VENDORED_SCHEMAS
        origin = "the project's vendored schemas"
    if not location.is_dir():
        raise ParamsError(
            f"schema folder {location} ({origin}) does not exist: restore deploy/{VENDORED_SCHEMAS} from git, "
            f"or point {SCHEMAS_ENV} at a folder laid out <group>/<kind>_<version>.json such as the CRDs catalog"
        )
    return location


def refresh_schemas(params: Params, commit: str, source: str | None, add: list[str]) -> str:
    """Replace the vendored schemas by the CRDs catalog's at `commit` (downloaded, or from a checkout)."""
    folder = params.root / params.deploy.overlays.parent / VENDORED_SCHEMAS
    try:
        written = crd_schemas.refresh(folder, commit, source=source, add=add)
    except crd_schemas.SchemaError as exc:
        raise ParamsError(str(exc)) from exc
    return f"{len(written)} schemas in {folder} from {crd_schemas.CATALOG_URL} at {commit}:\n  " + "\n  ".join(written)


def cpus(quantity: Any) -> float:
    """A Kubernetes CPU quantity ("500m", "2", 1.5) in CPUs."""
    text = str(quantity).strip()
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def server_resources(docs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The model server container's resources in one built target (Deployment or InferenceService)."""
    for doc in docs:
        spec = doc.get("spec") or {}
        if doc.get("kind") == "Deployment":
            containers = spec.get("template", {}).get("spec", {}).get("containers") or [{}]
            return containers[0].get("resources") or {}
        if doc.get("kind") == "InferenceService":
            return spec.get("predictor", {}).get("model", {}).get("resources") or {}
    return None


def server_cpu_problems(docs: list[dict[str, Any]], params: Params) -> list[str]:
    """The server's worker count against its CPUs: what runs is what the pod gets and the autoscaler measures."""
    resources = server_resources(docs)
    if resources is None:
        return []
    request = (resources.get("requests") or {}).get("cpu")
    limit = (resources.get("limits") or {}).get("cpu")
    if request is None or limit is None:
        return ["the model server needs a CPU request and limit: it runs one worker per CPU of the limit"]
    workers = params.serve.workers
    if workers == 0 and (cpus(request) != cpus(limit) or cpus(limit) != int(cpus(limit))):
        return [
            f"the model server's CPU request {request} and limit {limit} must be the same whole number of CPUs: "
            "with serve.workers 0 it runs one worker per CPU of the limit, and the autoscaler measures the request"
        ]
    if workers and cpus(request) < workers:
        return [f"serve.workers is {workers} but the model server requests {request} CPU: request {workers}"]
    return []


def _port_argument(container: dict[str, Any]) -> Any:
    """The value after `--port` in a container's command or args, or None."""
    words = [*(container.get("command") or []), *(container.get("args") or [])]
    return next((words[i + 1] for i, word in enumerate(words[:-1]) if word == "--port"), None)


def _container_ports(where: str, containers: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    found = []
    for container in containers[:1]:  # the server is the first container
        if (argument := _port_argument(container)) is not None:
            found.append((f"{where} --port", argument))
        found += [(f"{where} containerPort", port.get("containerPort")) for port in container.get("ports") or []]
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            port = ((container.get(probe) or {}).get("httpGet") or {}).get("port")
            if isinstance(port, int):  # a named port is the containerPort above
                found.append((f"{where} {probe}", port))
    return found


# The label every model server pod carries (base and components): policies and monitors selecting it are the server's.
SERVER_COMPONENT = ("app.kubernetes.io/component", "model-server")


def _selects_server(selector: dict[str, Any] | None) -> bool:
    return (selector or {}).get("matchLabels", {}).get(SERVER_COMPONENT[0]) == SERVER_COMPONENT[1]


def server_ports(docs: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """Every place a built target names the model server's port: (where, port)."""
    found: list[tuple[str, Any]] = []
    for doc in docs:
        kind, name, spec = doc.get("kind"), (doc.get("metadata") or {}).get("name"), doc.get("spec") or {}
        where = f"{kind} {name}"
        if kind == "Deployment":
            found += _container_ports(where, spec.get("template", {}).get("spec", {}).get("containers") or [])
        elif kind == "ServingRuntime":
            found += _container_ports(where, spec.get("containers") or [])
        elif kind == "InferenceService":
            found += _container_ports(where, [spec.get("predictor", {}).get("model") or {}])
        elif kind == "NetworkPolicy" and _selects_server(spec.get("podSelector")):
            for rule in spec.get("ingress") or []:
                found += [(f"{where} ingress port", port.get("port")) for port in rule.get("ports") or []]
        elif kind == "PodMonitor" and _selects_server(spec.get("selector")):
            endpoints = spec.get("podMetricsEndpoints") or []
            found += [(f"{where} portNumber", e["portNumber"]) for e in endpoints if "portNumber" in e]
    return found


def server_port_problems(docs: list[dict[str, Any]], params: Params) -> list[str]:
    """Ports the manifests give the model server against serve.port in params.yaml, which `make serve` uses."""
    wanted = params.serve.port
    return [
        f"{where} is {port} but serve.port in params.yaml is {wanted}: the server would not be reached; "
        "use the same port in both"
        for where, port in server_ports(docs)
        if str(port) != str(wanted)
    ]


def validate(params: Params, schemas: Path | None = None) -> list[str]:
    """Build and validate every target; one summary line per target, ManifestError listing every problem.

    A problem in a shared file (base, components) is listed once, with the targets it breaks.
    """
    folder = schemas_dir(params, schemas)
    lines, failures = [], []
    found: dict[Problem, list[str]] = {}
    for target in targets(params):
        label = str(target.relative_to(params.root))
        try:
            docs, wrapper = build(target)
        except ManifestError as exc:
            failures.append(str(exc))
            continue
        problems = validate_documents(docs, wrapper, params, folder, label)
        for problem in problems:
            found.setdefault(problem, []).append(target.name)
        is_overlay = target.parent == params.root / params.deploy.overlays
        if is_overlay and (problem := env_name_problem(target.name)):
            failures.append(f"{label}: {problem}")
        if is_overlay and target.name in params.deploy.environments:
            # What kustomize serves against the pin, as the promotion gate checks it.
            try:
                failures += [f"{label}: {line}" for line in served.problems(docs, read_pin(params, target.name))]
            except ParamsError as exc:
                failures.append(str(exc))
            # The drift job against its alerts, the registry's alias and params.yaml.
            failures += [f"{label}: {line}" for line in drift_job.check(docs, target.name, params)]
            failures += [f"{label}: {line}" for line in server_cpu_problems(docs, params)]
            failures += [f"{label}: {line}" for line in server_port_problems(docs, params)]
        lines.append(f"{label}: {len(docs)} objects, {'valid' if not problems else f'{len(problems)} problem(s)'}")
    # The Argo workflows `make render` wrote (pipelines/*.yaml): custom resources too.
    for rendered in sorted((params.root / "pipelines").glob("*.yaml")):
        label = str(rendered.relative_to(params.root))
        docs = [doc for doc in yaml.safe_load_all(rendered.read_text(encoding="utf-8")) if doc]
        problems = validate_documents(docs, rendered.parent, params, folder, label)
        for problem in problems:
            found.setdefault(problem, []).append(rendered.name)
        lines.append(f"{label}: {len(docs)} objects, {'valid' if not problems else f'{len(problems)} problem(s)'}")
    failures += [f"{problem} (in {', '.join(names)})" for problem, names in found.items()]
    if failures:
        raise ManifestError(f"{len(failures)} problem(s) in the manifests:\n  " + "\n  ".join(failures))
    return lines


def main(params: Params, schemas: Path | None = None) -> str:
    lines = validate(params, schemas)
    return f"every manifest builds and validates (Kubernetes {params.deploy.kubernetes_version}):\n  " + "\n  ".join(
        lines
    )
