"""Building blocks of the Argo workflows in pipelines/*.py: containers, artifacts, parameters, resources."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hera.workflows import Artifact, Container, Env, Parameter, Resources, RetryStrategy, SecretEnv
from hera.workflows import models as m

from ..config import OVERRIDES_ENV, PACKAGE, Params
from .dag import Step

WORKDIR = "/app"  # where the Dockerfile puts the project in the image


def artifact_name(path: str) -> str:
    """An Argo artifact name for a workspace path (`models/model` -> `models-model`)."""
    return re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-")


def _covers(out: str, dep: str) -> bool:
    return dep == out or Path(out) in Path(dep).parents or Path(dep) in Path(out).parents


def inputs_of(step: Step, steps: list[Step]) -> list[tuple[str, str]]:
    """(producing task, path) for every upstream output this step reads."""
    by_name = {s.name: s for s in steps}
    return [
        (up, out) for up in step.upstream for out in by_name[up].outs if any(_covers(out, dep) for dep in step.deps)
    ]


def workflow_parameters(params: Params) -> list[Parameter]:
    return [
        # The git commit to run: the image tag, and the lineage of what gets registered.
        Parameter(name="revision"),
        Parameter(name="params-overrides", value="{}", description=f"JSON merged over params.yaml ({OVERRIDES_ENV})"),
        Parameter(name="mlflow-tracking-uri", value=params.argo.mlflow_tracking_uri),
    ]


def workflow_settings(params: Params) -> dict[str, Any]:
    """Constructor arguments shared by every workflow of the project."""
    return {
        "namespace": params.argo.namespace,
        "service_account_name": params.argo.service_account,
        "arguments": workflow_parameters(params),
        "ttl_strategy": m.TTLStrategy(seconds_after_completion=params.argo.ttl_seconds),
        "pod_gc": m.PodGC(strategy="OnPodSuccess"),
        # The image's user (Dockerfile), as in the serving pods.
        "security_context": m.PodSecurityContext(run_as_non_root=True, run_as_user=10001, fs_group=10001),
        "labels": {"app.kubernetes.io/part-of": params.mlflow.experiment},
    }


def _environment(params: Params) -> list[Env | SecretEnv]:
    """Every step: the revision, overrides and tracking URI; secrets by reference only."""
    secret = params.argo.object_store_secret
    return [
        Env(name="GIT_COMMIT", value="{{workflow.parameters.revision}}"),
        Env(name=OVERRIDES_ENV, value="{{workflow.parameters.params-overrides}}"),
        Env(name="MLFLOW_TRACKING_URI", value="{{workflow.parameters.mlflow-tracking-uri}}"),
        # Optional: clusters with workload identity (IRSA and the like) need no keys.
        SecretEnv(name="AWS_ACCESS_KEY_ID", secret_name=secret, secret_key="AWS_ACCESS_KEY_ID", optional=True),
        SecretEnv(name="AWS_SECRET_ACCESS_KEY", secret_name=secret, secret_key="AWS_SECRET_ACCESS_KEY", optional=True),
        SecretEnv(
            name="MLFLOW_TRACKING_TOKEN",
            secret_name=params.argo.mlflow_secret,
            secret_key="MLFLOW_TRACKING_TOKEN",
            optional=True,
        ),
    ]


def _resources(params: Params, step: str) -> tuple[Resources, list[m.Toleration]]:
    wanted = params.argo.resources_for(step)
    cpu, memory = str(wanted.cpu), wanted.memory
    resources = Resources(cpu_request=cpu, cpu_limit=cpu, memory_request=memory, memory_limit=memory)
    if not wanted.gpu:
        return resources, []
    resources.gpus = wanted.gpu
    return resources, [m.Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")]


def cli_command(*args: str) -> list[str]:
    """A command of this project's CLI, as DVC runs it locally."""
    return ["python", "-m", PACKAGE, *args]


def container(
    name: str,
    command: Sequence[str],
    params: Params,
    inputs: Sequence[str] = (),
    outputs: Sequence[str] = (),
    output_parameters: dict[str, str] | None = None,
) -> Container:
    """A step of the pipeline: one CLI command in the project image, with its files as artifacts."""
    resources, tolerations = _resources(params, name)
    return Container(
        name=name,
        image=f"{params.argo.image}:{{{{workflow.parameters.revision}}}}",
        command=list(command),
        working_dir=WORKDIR,
        env=_environment(params),
        resources=resources,
        tolerations=tolerations or None,
        retry_strategy=RetryStrategy(
            limit=params.argo.retries,
            retry_policy="OnTransientError",
            backoff=m.Backoff(duration="30s", factor=2, max_duration="10m"),
        ),
        security_context=m.SecurityContext(allow_privilege_escalation=False, capabilities=m.Capabilities(drop=["ALL"])),
        inputs=[Artifact(name=artifact_name(p), path=f"{WORKDIR}/{p}") for p in inputs],
        outputs=[
            *(Artifact(name=artifact_name(p), path=f"{WORKDIR}/{p}") for p in outputs),
            *(
                Parameter(name=k, value_from=m.ValueFrom(path=f"{WORKDIR}/{v}"))
                for k, v in (output_parameters or {}).items()
            ),
        ],
    )


def step_template(step: Step, steps: list[Step], params: Params) -> Container:
    """The template of one pipeline step; the step writing the gate exposes it as a parameter."""
    gate = str(params.paths.gate)
    return container(
        step.name,
        step.command,
        params,
        inputs=sorted({path for _, path in inputs_of(step, steps)}),
        outputs=step.outs,
        output_parameters={"gate": gate} if gate in step.outs else None,
    )


def handover(task: str, paths: Sequence[str]) -> list[Artifact]:
    """Task arguments passing `task`'s output files on."""
    return [
        Artifact(name=artifact_name(p), from_=f"{{{{tasks.{task}.outputs.artifacts.{artifact_name(p)}}}}}")
        for p in paths
    ]


def task_arguments(step: Step, steps: list[Step]) -> list[Artifact]:
    """Task arguments that hand each upstream output to this step."""
    return [arg for up, path in inputs_of(step, steps) for arg in handover(up, [path])]


def producer(steps: list[Step], path: str) -> str:
    """The step whose outputs include `path`."""
    return next(step.name for step in steps if path in step.outs)


def passed_gate(task: str) -> str:
    """Argo condition: the gate file `task` exposes says the model passed."""
    return f"{{{{=jsonpath(tasks.{task}.outputs.parameters.gate, '$.passed') == true}}}}"
