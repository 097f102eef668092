"""What a server serves: an explicit model URI, the version pinned for an environment, or the candidate alias."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..config import Params
from ..errors import ParamsError


@dataclass(frozen=True)
class ServedModel:
    uri: str
    name: str
    version: str


def resolve_model(params: Params, env: str | None, model_uri: str | None, name: str | None = None) -> ServedModel:
    """What to serve: an explicit URI, the version pinned for `env`, or the registry's candidate alias."""
    name = name or os.environ.get("MODEL_NAME") or params.registry.model_name
    from ..registry import alias_version, connect

    if model_uri:
        if model_uri.split(":", 1)[0] in ("models", "runs", "mlflow-artifacts"):
            connect(params)  # a registry URI: the tracking server must answer in time
        return ServedModel(model_uri, name, os.environ.get("MODEL_VERSION") or "unversioned")
    from ..release.pin import read_pin

    if env:
        pin = read_pin(params, env)
        if not pin.version:
            raise ParamsError(
                f"no model is pinned for {env} in {pin.path}: promote one, or run `make serve` without ENV "
                f"to serve the '{params.registry.alias}' version"
            )
        connect(params)
        return ServedModel(f"models:/{pin.model}/{pin.version}", name, pin.version)
    alias = params.registry.alias
    version = alias_version(params, alias)
    if version is None:
        raise ParamsError(
            f"no version of {params.registry.model_name} has alias '{alias}' in the registry: run `make all` first"
        )
    return ServedModel(f"models:/{params.registry.model_name}/{version.version}", name, str(version.version))
