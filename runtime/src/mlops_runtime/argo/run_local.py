"""`pipeline run-local`: the rendered workflow YAML (pipelines/<name>.yaml) run task by task on this machine.

A harness for debugging and testing what Argo will run; Argo stays the engine on the cluster.
It reads the committed YAML, not the Hera module, so it exercises exactly what is reviewed and
applied: the DAG with its `depends` and `when`, each container's command, args and env, and the
artifacts and parameters handed from task to task.

Each task runs in a workspace of its own, laid out as the project image is: the files
.dockerignore lets into the image (code, params.yaml, dvc.yaml, DVC config and pointers), then
the task's input artifacts at their declared paths. The container's working directory is that
workspace; the command runs in this project's environment. Nothing of the project's own work tree
is written: a task sees only what the image and its declared inputs give it, as in a pod, so an
artifact the YAML forgets fails here as it would on the cluster.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import ParamsError, TaskFailed
from .container import Engine, give, local_remotes
from .expressions import depends_met, depends_tasks, substitute, when_holds
from .parameters import TRACKING_URI, environment, prepare_store, secret_notes, workflow_parameters
from .parameters import assignments as parse_assignments
from .processes import Stopped, StopSignals, run_group
from .workspace import LOGS, Pod, check_task_name, copy_artifact, image_files, lay_out_image, log_end, read_value

PIPELINES = Path("pipelines")
ARTIFACT_FROM = re.compile(r"^\{\{\s*tasks\.([\w-]+)\.outputs\.artifacts\.([\w-]+)\s*\}\}$")
LOG_TAIL = 15  # lines of a failed task's stderr in the message


@dataclass
class Outcome:
    """How one task ended, and what it left for the tasks after it."""

    phase: str  # Succeeded, Failed, Skipped (its `when` was false) or Omitted (its `depends` was not met)
    seconds: float = 0.0
    reason: str = ""  # one line, printed beside the task
    detail: str = ""  # the end of a failed task's stderr, for the final message
    artifacts: dict[str, Path] = field(default_factory=dict)
    values: dict[str, str] = field(default_factory=dict)


def available(root: Path) -> dict[str, Path]:
    """The workflows `make render` wrote, by name."""
    return {path.stem: path for path in sorted((root / PIPELINES).glob("*.yaml"))}


def load_workflow(root: Path, name: str) -> dict[str, Any]:
    """pipelines/<name>.yaml as a mapping; ParamsError naming the workflows there are."""
    found = available(root)
    if name not in found:
        names = ", ".join(found) or "none (run `make render`)"
        raise ParamsError(f"no workflow {name!r} in {root / PIPELINES}: the workflows there are {names}")
    try:
        doc = yaml.safe_load(found[name].read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ParamsError(f"{found[name]} is not valid YAML: {exc}") from None
    except RecursionError:
        raise ParamsError(f"{found[name]} nests too deeply to read: a workflow is a few levels deep") from None
    if not isinstance(doc, dict) or doc.get("kind") not in ("Workflow", "WorkflowTemplate"):
        raise ParamsError(f"{found[name]} is not an Argo Workflow or WorkflowTemplate")
    return doc


# --- one task --------------------------------------------------------------------------------------


@dataclass
class Run:
    """One run of a workflow: where it happens and what every finished task left."""

    root: Path
    folder: Path
    templates: dict[str, dict[str, Any]]
    parameters: dict[str, str]
    image: list[str]
    engine: Engine | None = None  # --image: each task runs in that image
    signals: StopSignals = field(default_factory=StopSignals)
    done: dict[str, Outcome] = field(default_factory=dict)

    def dag_values(self) -> dict[str, Any]:
        """What a DAG task's fields may name: workflow parameters and the outputs of finished tasks."""
        values: dict[str, Any] = {f"workflow.parameters.{k}": v for k, v in self.parameters.items()}
        values["workflow.name"] = self.folder.name
        for task, outcome in self.done.items():
            values[f"tasks.{task}.status"] = outcome.phase
            values.update({f"tasks.{task}.{k}": v for k, v in outcome.values.items()})
        return values

    def artifact_source(self, task: str, argument: dict[str, Any]) -> Path | None:
        source = argument.get("from")
        if source is None:
            raise ParamsError(
                f"task {task}: artifact argument {argument.get('name')} has no `from` run-local can follow"
            )
        found = ARTIFACT_FROM.match(str(source))
        if not found:
            raise ParamsError(
                f"task {task}: artifact {argument.get('name')} from {source!r}: only tasks.X.outputs.artifacts.Y"
            )
        upstream, name = found.groups()
        if upstream not in self.done:
            raise ParamsError(f"task {task}: artifact {argument.get('name')} comes from {upstream}, which has not run")
        return self.done[upstream].artifacts.get(name)

    def execute(self, task: dict[str, Any]) -> Outcome:
        name = task["name"]
        template = self.templates.get(task.get("template", ""))
        if template is None or "container" not in template:
            kind = "a templateRef" if "templateRef" in task else f"template {task.get('template')!r}"
            raise ParamsError(f"task {name}: {kind} is not a container template of this file; run-local runs those")
        if any(key in task for key in ("withItems", "withParam", "withSequence")):
            raise ParamsError(f"task {name}: loops (withItems, withParam, withSequence) are not run by run-local")
        where = f"task {name}"
        values = self.dag_values()
        arguments = task.get("arguments") or {}
        given = {
            p["name"]: substitute(str(p.get("value", "")), values, f"{where} argument {p['name']}")
            for p in arguments.get("parameters") or []
        }
        handed = {a["name"]: self.artifact_source(name, a) for a in arguments.get("artifacts") or []}
        inputs = template.get("inputs") or {}
        scope = {k: v for k, v in values.items() if k.startswith("workflow.")}
        for parameter in inputs.get("parameters") or []:
            value = given.get(parameter["name"], parameter.get("value"))
            if value is None:
                raise ParamsError(
                    f"{where}: input parameter {parameter['name']} has no value (no argument, no default)"
                )
            scope[f"inputs.parameters.{parameter['name']}"] = str(value)

        container = template["container"]
        workspace = self.folder / name
        pod = Pod(workspace, substitute(str(container.get("workingDir") or "/"), scope, f"{where} workingDir"))
        lay_out_image(self.root, self.image, workspace)
        for artifact in inputs.get("artifacts") or []:
            what = f"{where} input artifact {artifact['name']}"
            target = pod.path(substitute(artifact["path"], scope, what), what)
            scope[f"inputs.artifacts.{artifact['name']}.path"] = artifact["path"]
            source = handed.get(artifact["name"])
            if source is not None:
                copy_artifact(source, target, self.folder, what)
            elif "raw" in artifact:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(str(artifact["raw"].get("data", "")), encoding="utf-8")
            elif not artifact.get("optional"):
                raise ParamsError(f"{where}: input artifact {artifact['name']} is handed no file (arguments.artifacts)")
        command = [
            substitute(str(part), scope, f"{where} container")
            for part in [*(container.get("command") or []), *(container.get("args") or [])]
        ]
        if self.engine is not None:
            declared = [(f"{where} {w}", substitute(p, scope, f"{where} {w}")) for w, p in declared_paths(template)]
            argv = self.engine.command(name, template, pod, command, scope, declared)
            return self.launch(name, argv, dict(os.environ), pod, template, shown=" ".join(command))
        if not container.get("command"):
            raise ParamsError(f"{where}: the container has no command (the image's entrypoint is not known here)")
        command = [pod.argument(part) for part in command]
        return self.launch(name, command, environment(container, scope, where), pod, template)

    def launch(
        self, name: str, command: list[str], env: dict[str, str], pod: Pod, template: dict[str, Any], shown: str = ""
    ) -> Outcome:
        logs = self.folder / LOGS
        logs.mkdir(exist_ok=True)
        program = shutil.which(command[0], path=env["PATH"]) or command[0]
        started = time.monotonic()
        stdout, stderr = logs / f"{name}.out", logs / f"{name}.err"
        # The logs are read back through the handles the task wrote to, never by path: the task may have
        # replaced the path with a link (the workdir is open to it).
        with stdout.open("w+b") as out, stderr.open("w+b") as err:
            try:
                returncode = run_group([program, *command[1:]], pod.workspace, env, out, err, self.signals)
            except OSError as exc:
                return Outcome("Failed", time.monotonic() - started, f"cannot start {command[0]}: {exc}")
            except Stopped:
                if self.engine is not None:  # the docker CLI is stopped; its container may still run
                    self.engine.remove(name)
                raise
            seconds = time.monotonic() - started
            if returncode != 0:
                tail = log_end(err).splitlines()[-LOG_TAIL:]
                inside = f" in {self.engine.image}" if self.engine is not None else ""
                reason = f"`{shown or ' '.join(command)}`{inside} exited {returncode} (log: {stderr})"
                return Outcome("Failed", seconds, reason, "".join(f"\n    {line}" for line in tail))
            result = log_end(out).strip()
        try:
            return self.collect(name, template, pod, seconds, result)
        except ParamsError as exc:  # an output the task made a link out of its workspace: never read
            return Outcome("Failed", seconds, str(exc))

    def collect(self, name: str, template: dict[str, Any], pod: Pod, seconds: float, result: str) -> Outcome:
        """The task's declared outputs; a missing one fails the task, naming artifact and path."""
        outputs = template.get("outputs") or {}
        outcome = Outcome("Succeeded", seconds)
        outcome.values["outputs.result"] = result
        for artifact in outputs.get("artifacts") or []:
            path = pod.path(artifact["path"], f"task {name} output artifact {artifact['name']}")
            if path.exists():
                outcome.artifacts[artifact["name"]] = path
            elif not artifact.get("optional"):
                return Outcome(
                    "Failed",
                    seconds,
                    f"output artifact {artifact['name']}: {artifact['path']} was not written ({path})",
                )
        for parameter in outputs.get("parameters") or []:
            key = f"outputs.parameters.{parameter['name']}"
            source = parameter.get("valueFrom") or {}
            if "path" in source:
                path = pod.path(source["path"], f"task {name} output parameter {parameter['name']}")
                if path.is_file():
                    outcome.values[key] = read_value(path, f"output parameter {parameter['name']}").rstrip("\n")
                elif "default" in source:
                    outcome.values[key] = str(source["default"])
                else:
                    return Outcome(
                        "Failed", seconds, f"output parameter {parameter['name']}: {source['path']} was not written"
                    )
            elif "value" in parameter:
                outcome.values[key] = str(parameter["value"])
            else:
                raise ParamsError(
                    f"task {name}: output parameter {parameter['name']} comes from {source}; run-local reads files only"
                )
        return outcome


# --- the DAG ---------------------------------------------------------------------------------------


def waits_for(task: dict[str, Any]) -> list[str]:
    if task.get("depends"):
        return depends_tasks(str(task["depends"]))
    return list(task.get("dependencies") or [])


def ready(task: dict[str, Any], done: dict[str, Outcome]) -> tuple[bool, str]:
    """Whether the task's `depends` (or `dependencies`) holds, given the phases of the finished tasks."""
    phases = {name: outcome.phase for name, outcome in done.items()}
    if task.get("depends"):
        expression = str(task["depends"])
        return depends_met(expression, phases), f"depends {expression!r} not met"
    needed = list(task.get("dependencies") or [])
    return depends_met(" && ".join(needed), phases) if needed else True, f"dependencies {needed} not met"


def declared_paths(template: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(what, path) for each path a container template declares: artifacts and output parameters."""
    for side in ("inputs", "outputs"):
        for artifact in (template.get(side) or {}).get("artifacts") or []:
            yield f"{side[:-1]} artifact {artifact.get('name')}", str(artifact.get("path", ""))
    for parameter in (template.get("outputs") or {}).get("parameters") or []:
        if "path" in (parameter.get("valueFrom") or {}):
            yield f"output parameter {parameter.get('name')}", str(parameter["valueFrom"]["path"])


def check_paths(tasks: list[dict[str, Any]], templates: dict[str, dict[str, Any]]) -> None:
    """Refuse, before any task runs, a declared path that `..` takes out of its working directory.

    Paths with placeholders, and links a task makes, are checked again where they are used."""
    for task in tasks:
        container = (templates.get(task.get("template", "")) or {}).get("container") or {}
        working_dir = str(container.get("workingDir") or "/")
        for what, path in declared_paths(templates.get(task.get("template", "")) or {}):
            if "{{" not in path + working_dir:
                Pod(Path(), working_dir).relative(path, f"task {task['name']} {what}")


def order(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tasks in an order that runs every task after those it waits for (file order among equals)."""
    names = [check_task_name(task.get("name")) for task in tasks]
    if len(set(names)) != len(names):
        raise ParamsError(f"task names repeat in the DAG: {names}")
    for task in tasks:
        unknown = sorted(set(waits_for(task)) - set(names))
        if unknown:
            raise ParamsError(f"task {task['name']} waits for {', '.join(unknown)}, which is no task of the DAG")
    placed: list[dict[str, Any]] = []
    pending = list(tasks)
    while pending:
        placed_names = {t["name"] for t in placed}
        nxt = next((t for t in pending if set(waits_for(t)) <= placed_names), None)
        if nxt is None:
            raise ParamsError(f"the DAG has a cycle among {', '.join(t['name'] for t in pending)}")
        placed.append(nxt)
        pending.remove(nxt)
    return placed


def run_dag(run: Run, entry: str, report: Callable[[str], None]) -> dict[str, Outcome]:
    """Every task of the entry DAG in dependency order: run, skipped (`when`) or omitted (`depends`)."""
    dag = (run.templates.get(entry) or {}).get("dag")
    if not dag:
        raise ParamsError(f"the entrypoint {entry!r} is not a DAG template; run-local runs DAG workflows")
    tasks = order(dag.get("tasks") or [])
    check_paths(tasks, run.templates)
    width = max(len(task["name"]) for task in tasks)
    for task in tasks:
        name = task["name"]
        met, why = ready(task, run.done)
        where = f"workspaces and logs in {run.folder}"
        if run.signals.received:
            raise TaskFailed(f"stopped by {Stopped(run.signals.received[0])} before task {name} started; {where}")
        if not met:
            outcome = Outcome("Omitted", reason=why)
        elif task.get("when") and not when_holds(str(task["when"]), run.dag_values(), f"task {name} when"):
            outcome = Outcome("Skipped", reason=f"when {task['when']!r} is false")
        else:
            try:
                outcome = run.execute(task)
            except Stopped as stop:
                stopped = f"stopped by {stop} while task {name} was running: its processes were stopped"
                raise TaskFailed(f"{stopped}; {where}") from None
        run.done[name] = outcome
        shown = "Skipped" if outcome.phase == "Omitted" else outcome.phase
        report(
            f"  {name:<{width}}  {outcome.seconds:7.1f}s  {shown}" + (f"  ({outcome.reason})" if outcome.reason else "")
        )
    return run.done


def _new_folder(workdir: Path | None, name: str) -> Path:
    if workdir is None:
        return Path(tempfile.mkdtemp(prefix=f"{name}-run-local-"))
    if workdir.exists() and any(workdir.iterdir()):
        raise ParamsError(f"--workdir {workdir} is not empty: give a new or empty folder (each run lays out its own)")
    workdir.mkdir(parents=True, exist_ok=True)
    return workdir.resolve()


def run_local(
    root: Path,
    name: str,
    assignments: Sequence[str] = (),
    parameters: Sequence[str] = (),
    workdir: Path | None = None,
    image: str | None = None,
    report: Callable[[str], None] = lambda line: print(line, flush=True),
) -> str:
    """`pipeline run-local`: run pipelines/<name>.yaml here; TaskFailed naming the task if one fails."""
    from .submit import overrides

    doc = load_workflow(root, name)
    spec = doc.get("spec") or {}
    templates = {t["name"]: t for t in spec.get("templates") or []}
    given = parse_assignments(parameters, "-p")
    values = workflow_parameters(root, spec, overrides(assignments), given)
    engine = None if image is None else Engine(image, spec)
    folder = _new_folder(workdir, name)
    artifacts = None
    if engine is not None:
        engine.share_remotes(local_remotes(root))
        if TRACKING_URI not in given and values.get(TRACKING_URI, "").startswith("sqlite:"):
            # A store of the run's own in the workdir, mounted at the same path: the host reads what the tasks logged.
            artifacts = engine.store(folder) / "mlartifacts"
            values[TRACKING_URI] = f"sqlite:///{artifacts.parent / 'mlflow.db'}"
    prepare_store(root, values, artifacts)
    if artifacts is not None:
        give(artifacts.parent, engine.user({}))
    run = Run(root, folder, templates, values, image_files(root), engine)
    inside = f" in the image {image}" if image else ""
    report(f"{name}: running {root / PIPELINES / name}.yaml task by task{inside} in {run.folder}")
    for note in secret_notes(templates):
        report(f"  note: {note}")
    # SIGTERM or SIGINT stops the running task's processes, then run-local, naming the task.
    with run.signals:
        try:
            done = run_dag(run, str(spec.get("entrypoint", "")), report)
        except TaskFailed as exc:
            raise TaskFailed(f"workflow {name}: {exc}") from None
    failed = [(task, outcome) for task, outcome in done.items() if outcome.phase == "Failed"]
    if failed:
        task, outcome = failed[0]
        others = f" (also failed: {', '.join(t for t, _ in failed[1:])})" if failed[1:] else ""
        raise TaskFailed(f"workflow {name}: task {task} failed: {outcome.reason}{others}{outcome.detail}")
    counts = {phase: sum(o.phase == phase for o in done.values()) for phase in ("Succeeded", "Skipped", "Omitted")}
    return (
        f"workflow {name} succeeded: {counts['Succeeded']} task(s) run, "
        f"{counts['Skipped'] + counts['Omitted']} skipped; workspaces and logs in {run.folder}"
    )
