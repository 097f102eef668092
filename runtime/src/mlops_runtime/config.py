"""Typed access to params.yaml: one loader, one error message format."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

# The evaluate section (success criteria, fairness bounds) has a module of its own; importable from here too.
from .criteria_config import FAIRNESS_METRICS, Bound, Evaluate, FairnessBound, FairnessMetric  # noqa: F401
from .errors import ParamsError
from .section import Section as _Section

PARAMS_FILE = "params.yaml"
# JSON merged over params.yaml, e.g. '{"train": {"seed": 3}}': how a cluster run
# takes parameter overrides without a commit.
OVERRIDES_ENV = "PARAMS_OVERRIDES"
OVERRIDES_EXAMPLE = '{"train": {"seed": 3}}'
# Overrides servers.timeout_seconds: how long a command waits for a server.
TIMEOUT_ENV = "SERVER_TIMEOUT_SECONDS"


class Paths(_Section):
    ingested: Path
    validated: Path
    validation_report: Path
    train: Path
    test: Path
    model: Path
    model_info: Path
    metrics: Path
    slices: Path
    gate: Path
    confusion: Path
    roc: Path
    # The model card (card.py): the sections its owners write, and the card evaluate writes in both forms.
    # Defaults, so that a params.yaml from before the card still loads (its update adds the lines).
    card_text: Path = Path("model_card.md")
    card: Path = Path("reports/model_card.json")
    card_markdown: Path = Path("reports/model_card.md")


class Ingest(_Section):
    source: str
    format: Literal["auto", "csv", "parquet"] = "auto"


class Column(_Section):
    kind: Literal["numeric", "categorical"]
    min: float | None = None
    max: float | None = None
    allowed: list[str] | None = None
    nullable: bool = False

    @model_validator(mode="after")
    def _bounds_fit_kind(self) -> Column:
        if self.kind == "numeric" and self.allowed is not None:
            raise ValueError("'allowed' applies to categorical columns; use min/max for numeric ones")
        if self.kind == "categorical" and (self.min is not None or self.max is not None):
            raise ValueError("min/max apply to numeric columns; use 'allowed' for categorical ones")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class DataContract(_Section):
    id_column: str | None = None
    label: str
    columns: dict[str, Column] = Field(min_length=1)

    @property
    def numeric(self) -> list[str]:
        return [name for name, col in self.columns.items() if col.kind == "numeric"]

    @property
    def categorical(self) -> list[str]:
        return [name for name, col in self.columns.items() if col.kind == "categorical"]

    @property
    def features(self) -> list[str]:
        return list(self.columns)


class Featurize(_Section):
    test_size: float = Field(gt=0, lt=1)
    seed: int = 0


class Search(_Section):
    method: Literal["grid", "random"] = "grid"
    n_iter: int = Field(default=10, ge=1)
    cv_folds: int = Field(default=3, ge=2)
    scoring: str = "roc_auc"
    space: dict[str, list[Any]] = Field(default_factory=dict)


class Train(_Section):
    estimator: Literal["hist_gradient_boosting", "random_forest", "logistic_regression"]
    seed: int = 0
    search: Search = Search()


class Register(_Section):
    model_name: str
    alias: str = "challenger"


class Monitor(_Section):
    profile_quantiles: int = Field(default=200, ge=10)
    numeric_threshold: float = Field(gt=0)
    categorical_threshold: float = Field(gt=0, le=1)
    max_drift_share: float = Field(ge=0, lt=1)
    outlier_contamination: float = Field(gt=0, le=0.5)
    max_outlier_share: float = Field(ge=0, lt=1)
    # Fewer current rows than this get no verdict (exit 2): a share of a handful of rows says nothing.
    min_rows: int = Field(default=100, ge=1)
    # The drift job reads the inputs logged in this many hours before it runs (a folder of the server's log).
    window_hours: float = Field(default=24, gt=0)
    reports: Path = Path("reports/monitoring")
    # The default --reference of `monitor drift|outliers` (`make monitor`).
    reference: str

    @model_validator(mode="before")
    @classmethod
    def _cluster_keys(cls, data: Any) -> Any:
        # The scheduled check on the cluster is the drift CronJob of each environment, which
        # takes these from deploy/overlays/<env>/thresholds.yaml; an update conflict resolved
        # by hand can bring them back here, where nothing would read them.
        moved = {"current": "driftCurrent", "schedule": "driftSchedule", "pushgateway": "pushgateway"}
        found = [key for key in moved if isinstance(data, dict) and key in data]
        if found:
            where = ", ".join(f"{key} -> {moved[key]}" for key in found)
            raise ValueError(
                f"{', '.join(found)} belong to the drift job of each environment now: set them in "
                f"deploy/overlays/<env>/thresholds.yaml ({where}) and delete them under monitor"
            )
        return data


class StepResources(_Section):
    cpu: str | int | float
    memory: str
    gpu: int = Field(default=0, ge=0)


class Argo(_Section):
    namespace: str
    image: str
    service_account: str
    mlflow_tracking_uri: str
    object_store_secret: str
    mlflow_secret: str
    retries: int = Field(default=3, ge=0)
    ttl_seconds: int = Field(default=86400, ge=0)
    resources: dict[str, StepResources]

    @model_validator(mode="before")
    @classmethod
    def _drift_dispatch_keys(cls, data: Any) -> Any:
        # They served the Argo drift workflow; the drift CronJob dispatches a breach itself.
        found = [key for key in ("github_secret", "github_repository") if isinstance(data, dict) and key in data]
        if found:
            raise ValueError(
                f"{' and '.join(found)} are no longer read (the drift CronJob of each environment sends breaches, "
                "with the Secret <project>-github of its namespace): delete them under argo"
            )
        return data

    @model_validator(mode="after")
    def _has_default_resources(self) -> Argo:
        if "default" not in self.resources:
            raise ValueError("resources needs a 'default' entry (cpu, memory) for stages not listed")
        return self

    def resources_for(self, step: str) -> StepResources:
        return self.resources.get(step, self.resources["default"])


class Mlflow(_Section):
    tracking_uri: str = "sqlite:///mlflow.db"
    experiment: str


class Servers(_Section):
    # How long a command waits for a server (the MLflow tracking server and registry, the Argo
    # server, a Pushgateway) before it gives up with exit code 5; SERVER_TIMEOUT_SECONDS overrides it.
    timeout_seconds: int = Field(default=30, ge=1)


class Serve(_Section):
    # Bigger batches get 413: one request must not hold the server for long.
    max_batch_rows: int = Field(default=1000, ge=1)
    # Characters of one text value, and of all a request's text values together: more gets 413
    # (serving/protocol.py). They bound a request's work and memory, whatever its body holds.
    max_value_chars: int = Field(default=1024, ge=1)
    max_request_chars: int = Field(default=1_000_000, ge=1)
    host: str = "127.0.0.1"
    # No default here: params.yaml is the one place the port is written.
    port: int = Field(ge=1, le=65535)
    log_inputs: Path | None = None
    # Log files are grouped in windows of this many minutes (monitoring/input_log.py).
    log_window_minutes: int = Field(default=60, ge=1, le=1440)
    # Each worker writes its logged rows at least this often: what a killed worker can lose.
    log_flush_seconds: float = Field(default=30, gt=0, le=3600)
    # True: a log that cannot be written makes the server unready (503), not only reported.
    log_inputs_required: bool = False
    # Processes answering requests; 0: one per CPU the server may use (the container's CPU limit).
    workers: int = Field(default=0, ge=0, le=64)
    # Predict on numpy columns (serving/fast_path.py) when the model proves equal to pyfunc at start-up.
    fast_path: bool = True
    # After SIGTERM: readiness 503, requests still answered this long, then a graceful stop (serving/drain.py).
    drain_seconds: float = Field(default=5, ge=0, le=120)

    @field_validator("log_inputs", mode="before")
    @classmethod
    def _empty_is_off(cls, value: Any) -> Any:
        # Path("") is the project root: an empty setting means no logging, as params.yaml says.
        return None if isinstance(value, str) and not value.strip() else value


# An environment names an overlay folder, a namespace and a registry alias: a DNS label, ASCII only,
# so that no look-alike character (a Cyrillic "е" in "dеv") names another one than it seems to.
ENV_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


def env_name_problem(name: str) -> str:
    """Why `name` cannot name an environment; empty when it can."""
    if ENV_NAME.fullmatch(name):
        return ""
    return (
        f"environment name {name!r} must be lower-case ASCII letters, digits and '-' (a DNS label of at most 63, "
        "starting and ending with a letter or digit); a look-alike character names another folder, namespace and "
        "registry alias than the one it seems to: rename it"
    )


class Deploy(_Section):
    overlays: Path = Path("deploy/overlays")
    environments: list[str] = Field(default_factory=lambda: ["dev", "staging", "prod"], min_length=1)
    # Kubernetes version whose API schemas `manifests validate` checks the core kinds against.
    kubernetes_version: str = Field(default="1.33", pattern=r"^1\.\d+$")
    # The success criterion a challenger must not be worse on than the champion it
    # replaces (`promote`); default: the first of evaluate.success_criteria.
    compare_on: str | None = None

    @field_validator("environments")
    @classmethod
    def _dns_labels(cls, names: list[str]) -> list[str]:
        problems = [problem for name in names if (problem := env_name_problem(name))]
        if problems:
            raise ValueError("; ".join(problems))
        return names


# A dotted module path, a colon, a dotted attribute path: what entry points accept (extensions.py loads it).
HOOK_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


class Hooks(_Section):
    """The project's code the platform calls (extensions.py; docs/hooks.md): "module:attribute", or empty."""

    # An object with before_predict(columns) and/or after_predict(columns, predictions) (serving/hooks.py).
    serving: str = ""
    # A function(batches, params) returning extra monitoring checks (monitoring/extra.py).
    monitoring: str = ""
    # A function(params, env, challenger, champion) returning extra promotion gates (release/extra_gates.py).
    promotion: str = ""

    @field_validator("serving", "monitoring", "promotion")
    @classmethod
    def _module_colon_attribute(cls, value: str) -> str:
        value = value.strip()
        if value and not HOOK_NAME.fullmatch(value):
            raise ValueError(f"{value!r} is not 'module:attribute' (e.g. mypackage.hooks:ServingHooks); empty is none")
        return value


class Params(_Section):
    """Everything in params.yaml; `root` is the folder the relative paths start from."""

    root: Path = Path(".")
    paths: Paths
    ingest: Ingest
    data: DataContract
    featurize: Featurize
    train: Train
    evaluate: Evaluate
    # `register` would shadow BaseModel.register; the YAML key stays the stage name.
    registry: Register = Field(alias="register")
    monitor: Monitor
    argo: Argo
    mlflow: Mlflow
    servers: Servers = Servers()
    serve: Serve
    deploy: Deploy = Deploy()
    hooks: Hooks = Hooks()

    @model_validator(mode="after")
    def _slices_are_columns(self) -> Params:
        unknown = [c for c in self.evaluate.slice_by if c not in self.data.columns]
        if unknown:
            raise ValueError(
                f"evaluate.slice_by names {unknown}, which are not in data.columns ({', '.join(self.data.columns)})"
            )
        return self

    def path(self, name: str) -> Path:
        """Absolute path of one entry of the `paths` section."""
        return self.root / getattr(self.paths, name)

    def source(self) -> str:
        """The ingest source: a URL as written, a local path made absolute."""
        src = self.ingest.source
        return src if "://" in src else str(self.root / src)


def server_timeout(params: Params | None = None) -> int:
    """Seconds to wait for a server: SERVER_TIMEOUT_SECONDS if set, else servers.timeout_seconds (default 30)."""
    text = os.environ.get(TIMEOUT_ENV, "").strip()
    if not text:
        return params.servers.timeout_seconds if params is not None else Servers().timeout_seconds
    if not text.isdigit() or int(text) < 1:
        raise ParamsError(f"{TIMEOUT_ENV} is {text!r}: write a whole number of seconds, at least 1 (default 30)")
    return int(text)


def _field_name(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc if part not in ("function-after",)) or "(top level)"


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`base` with `extra` merged in, mappings key by key, other values replaced."""
    merged = dict(base)
    for key, value in extra.items():
        both_maps = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = merge(merged[key], value) if both_maps else value
    return merged


def _overrides() -> dict[str, Any]:
    text = os.environ.get(OVERRIDES_ENV, "").strip()
    if not text:
        return {}
    try:
        extra = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParamsError(f"{OVERRIDES_ENV} is not valid JSON ({exc}): write for example {OVERRIDES_EXAMPLE}") from None
    if not isinstance(extra, dict):
        raise ParamsError(f"{OVERRIDES_ENV} must be a JSON object of params.yaml sections")
    return extra


def load_params(path: Path | str = PARAMS_FILE) -> Params:
    """Read and check params.yaml; raise ParamsError naming the wrong field."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParamsError(f"{path} not found: run from the project root or pass --params PATH") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path} must be a mapping of sections (paths, ingest, data, ...)")
    raw = merge(raw, _overrides())
    try:
        return Params(root=path.resolve().parent, **raw)
    except ValidationError as exc:
        lines = [
            f"  {_field_name(err['loc'])}: {err['msg']}"
            + (f" (got {err['input']!r})" if err["type"] != "missing" and not isinstance(err["input"], dict) else "")
            for err in exc.errors()
        ]
        raise ParamsError(f"{path} has {len(lines)} invalid field(s):\n" + "\n".join(lines)) from None
