"""Submit: run the training workflow on an Argo server, for one commit, within a bounded wait."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import requests

from ..config import TIMEOUT_ENV
from ..errors import ParamsError, SubmitError

SERVER_ENV, TOKEN_ENV, NAMESPACE_ENV = "ARGO_SERVER", "ARGO_TOKEN", "ARGO_NAMESPACE"


def _server() -> tuple[str, str | None, str | None]:
    host = os.environ.get(SERVER_ENV, "").rstrip("/")
    if not host:
        raise ParamsError(f"{SERVER_ENV} is not set: export {SERVER_ENV}=https://argo.example.com (and {TOKEN_ENV})")
    return host, os.environ.get(TOKEN_ENV) or None, os.environ.get(NAMESPACE_ENV) or None


class BoundedSession(requests.Session):
    """A requests session whose every request waits at most `timeout` seconds (connect and each read)."""

    def __init__(self, timeout: int) -> None:
        super().__init__()
        self.timeout = timeout

    def request(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", self.timeout)
        return super().request(*args, **kwargs)


def submit(workflow: Any, timeout: int = 30) -> tuple[str, str]:
    """Create `workflow` on the Argo server from the environment; return its name and UI link.

    Waits at most `timeout` seconds for the server (servers.timeout_seconds)."""
    from hera import exceptions as hx
    from hera.workflows import WorkflowsService

    host, token, namespace = _server()
    workflow.namespace = namespace or workflow.namespace
    token = token if token is None or token.startswith("Bearer ") else f"Bearer {token}"
    workflow.workflows_service = WorkflowsService(
        host=host, token=token, namespace=workflow.namespace, session=BoundedSession(timeout)
    )
    try:
        created = workflow.create()
    except requests.exceptions.Timeout:
        raise SubmitError(
            f"cannot reach the Argo server at {host} (no answer within {timeout} s): check {SERVER_ENV} and the "
            f"network; servers.timeout_seconds in params.yaml (or {TIMEOUT_ENV}) sets the wait"
        ) from None
    except requests.exceptions.ConnectionError:
        raise SubmitError(f"cannot reach the Argo server at {host}: check {SERVER_ENV} and the network") from None
    except (hx.Unauthorized, hx.Forbidden) as exc:
        raise SubmitError(
            f"the Argo server refused the credentials ({exc}): set {TOKEN_ENV} to a token allowed to "
            f"create workflows in namespace {workflow.namespace}"
        ) from None
    except hx.AlreadyExists as exc:
        raise SubmitError(f"a workflow with this name already exists ({exc}): submit again for a new name") from None
    except hx.HeraException as exc:
        raise SubmitError(f"the Argo server rejected the workflow: {exc}") from None
    name = created.metadata.name
    return name, f"{host}/workflows/{created.metadata.namespace}/{name}"


def overrides(assignments: Sequence[str]) -> dict[str, Any]:
    """`section.key=value` pairs (values parsed as YAML) as a nested mapping."""
    import yaml

    result: dict[str, Any] = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ParamsError(f"--set {item!r} is not KEY=VALUE: write for example --set train.seed=3")
        *parents, leaf = key.split(".")
        node = result
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    return result


def submit_training(root: Path, revision: str | None, assignments: Sequence[str]) -> str:
    """`pipeline submit`: the training workflow for `revision` (default HEAD), with parameter overrides."""
    from hera.workflows import Workflow

    from ..config import server_timeout
    from ..lineage import UNKNOWN, git_commit, is_commit_id
    from .render import load_module

    module = load_module(root, "training")
    revision = revision or git_commit(root)
    if revision == UNKNOWN:
        raise ParamsError("no git commit to run: pass --revision SHA (the image tag built for that commit)")
    # The revision becomes an image tag and a workflow parameter: a commit id, nothing else.
    if not is_commit_id(revision):
        raise ParamsError(f"--revision '{revision}' is not a git commit: give its hexadecimal id (git rev-parse HEAD)")
    workflow = module.build(
        Workflow,
        generate_name=f"{module.params.mlflow.experiment}-training-",
        arguments={"revision": revision, "params-overrides": json.dumps(overrides(assignments))},
    )
    name, link = submit(workflow, server_timeout(module.params))
    return f"submitted {name} (revision {revision})\n  {link}"
