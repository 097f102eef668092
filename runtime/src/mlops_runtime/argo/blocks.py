"""Building blocks of the Argo workflows in pipelines/*.py: containers, artifacts, parameters, resources."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from hera.workflows import Artifact, Container, Env, Parameter, Resources, RetryStrategy, SecretEnv
from hera.workflows import models as m

from ..config import OVERRIDES_ENV, Params
from ..errors import ParamsError
from ..project import package
from .dag import Step, slug

WORKDIR = "/app"  # where the Dockerfile puts the project in the image
# The one pod security context of the project (the image's user), beside the overlays: kustomize
# copies it into every serving workload (components/pod-security), the workflows read it here.
POD_SECURITY = Path("components/pod-security/pod-security.yaml")


def artifact_name(path: str) -> str:
    """An Argo artifact name for a workspace path (`models/model` -> `models-model`)."""
    return slug(path)


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


def pod_security_context(params: Params) -> m.PodSecurityContext:
    """spec.securityContext of the project's PodSecurity document; ParamsError naming the file when it is unusable."""
    path = params.root / params.deploy.overlays.parent / POD_SECURITY
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParamsError(f"{path} not found: restore it from git (the user of every pod is written there)") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path} is not valid YAML: {exc}") from None
    context = ((doc or {}).get("spec") or {}).get("securityContext") if isinstance(doc, dict) else None
    if not isinstance(context, dict) or not isinstance(context.get("runAsUser"), int):
        raise ParamsError(f"{path} needs spec.securityContext with a numeric runAsUser (the image's user)")
    return m.PodSecurityContext.model_validate(context)


def workflow_settings(params: Params) -> dict[str, Any]:
    """Constructor arguments shared by every workflow of the project."""
    return {
        "namespace": params.argo.namespace,
        "service_account_name": params.argo.service_account,
        "arguments": workflow_parameters(params),
        "ttl_strategy": m.TTLStrategy(seconds_after_completion=params.argo.ttl_seconds),
        "pod_gc": m.PodGC(strategy="OnPodSuccess"),
        # The image's user: the same pod security context as every serving pod.
        "security_context": pod_security_context(params),
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
    return ["python", "-m", package(), *args]


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
