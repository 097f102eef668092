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

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import yaml

from ..config import OVERRIDES_ENV, PARAMS_FILE, load_params
from ..errors import ParamsError, TaskFailed
from .expressions import depends_met, depends_tasks, substitute, when_holds

PIPELINES = Path("pipelines")
IMAGE_FILTER = ".dockerignore"
ARTIFACT_FROM = re.compile(r"^\{\{\s*tasks\.([\w-]+)\.outputs\.artifacts\.([\w-]+)\s*\}\}$")
# Workflow parameters that have a local meaning (blocks.workflow_parameters declares them).
REVISION, OVERRIDES, TRACKING_URI = "revision", "params-overrides", "mlflow-tracking-uri"
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
    if not isinstance(doc, dict) or doc.get("kind") not in ("Workflow", "WorkflowTemplate"):
        raise ParamsError(f"{found[name]} is not an Argo Workflow or WorkflowTemplate")
    return doc


# --- the image: which project files a pod finds in its working directory ---------------------------


def _pattern(text: str) -> re.Pattern[str]:
    """One .dockerignore pattern (Go filepath.Match with `**`) as a regular expression."""
    out, i = "", 0
    while i < len(text):
        if text.startswith("**", i):
            out, i = out + ".*", i + 2
            if text.startswith("/", i):
                out, i = out + "/?", i + 1
        elif text[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif text[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(text[i]), i + 1
    return re.compile(out)


def image_rules(root: Path) -> list[tuple[bool, str, re.Pattern[str]]]:
    """(include, pattern, regex) for each line of .dockerignore, in order (the last match decides)."""
    path = root / IMAGE_FILTER
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ParamsError(
            f"{path} not found: run-local lays each task out as the image is built, from it; restore it from git"
        ) from None
    rules = []
    for line in (line.strip() for line in lines):
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip()).strip("/")
        rules.append((include, pattern, _pattern(pattern)))
    return rules


def _excluded(relative: str, rules: list[tuple[bool, str, re.Pattern[str]]]) -> bool:
    """Docker's rule: a pattern matches a path or any folder above it; the last matching line wins."""
    parts = relative.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for include, _, regex in rules:
        if any(regex.fullmatch(candidate) for candidate in candidates):
            excluded = not include
    return excluded


def image_files(root: Path) -> list[str]:
    """The project files the image build copies (relative paths), as .dockerignore lets them through."""
    rules = image_rules(root)
    # Folders that an `!` line may reach into must be walked even when excluded.
    reachable = [re.split(r"[*?\[]", pattern)[0] for include, pattern, _ in rules if include]
    files = []
    for folder, subfolders, names in os.walk(root):
        here = os.path.relpath(folder, root)
        here = "" if here == "." else here + "/"
        subfolders[:] = [
            name
            for name in subfolders
            if not _excluded(here + name, rules)
            or any(prefix.startswith(here + name + "/") or not prefix for prefix in reachable)
        ]
        files += [here + name for name in names if not _excluded(here + name, rules)]
    return sorted(files)


def lay_out_image(root: Path, files: Sequence[str], workspace: Path) -> None:
    """A pod's working directory: the image's files, and DVC told there is no git (the Dockerfile does the same)."""
    for relative in files:
        target = workspace / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / relative, target)
    if (workspace / ".dvc").is_dir():
        (workspace / ".dvc" / "config.local").write_text("[core]\n    no_scm = true\n", encoding="utf-8")


# --- parameters, environment, artifacts --------------------------------------------------------------


def _assignments(items: Sequence[str], flag: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ParamsError(f"{flag} {item!r} is not NAME=VALUE")
        pairs[key] = value
    return pairs


def workflow_parameters(
    root: Path, spec: dict[str, Any], overrides: dict[str, Any], given: dict[str, str]
) -> dict[str, str]:
    """Each workflow parameter's value for a run here: -p, else the local meaning, else the YAML's default."""
    from ..lineage import git_commit
    from ..registry import tracking_uri

    declared = {p["name"]: p.get("value") for p in (spec.get("arguments") or {}).get("parameters") or []}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise ParamsError(f"-p {', '.join(unknown)}: no such workflow parameter (declared: {', '.join(declared)})")
    local: dict[str, str] = {}
    if REVISION in declared:
        # The commit the image would be built from: this work tree's HEAD.
        local[REVISION] = git_commit(root)
    if TRACKING_URI in declared:
        # The tracking store `make all` uses: MLFLOW_TRACKING_URI, else params.yaml resolved in this
        # project; never the cluster's in-cluster URL.
        local[TRACKING_URI] = tracking_uri(load_params(root / PARAMS_FILE))
    if overrides and OVERRIDES not in declared:
        raise ParamsError(f"--set needs the workflow parameter {OVERRIDES}, which this workflow does not declare")
    if overrides:
        local[OVERRIDES] = json.dumps(overrides)
    elif os.environ.get(OVERRIDES_ENV, "").strip():
        local[OVERRIDES] = os.environ[OVERRIDES_ENV]
    values = {}
    for name, default in declared.items():
        value = given.get(name, local.get(name) if name in local else default)
        if value is None:
            raise ParamsError(f"workflow parameter {name} has no value: pass -p {name}=VALUE")
        values[name] = str(value)
    return values


def prepare_store(root: Path, parameters: dict[str, str]) -> None:
    """Create the experiment beside a local SQLite store, as `make all` does, before any task logs to it.

    Otherwise the first task would create it with artifacts under its own workspace."""
    uri = parameters.get(TRACKING_URI, "")
    if not uri.startswith("sqlite:"):
        return
    import logging

    from ..registry import configure

    # MLflow announces creating its tables; the run's own lines are what this command prints.
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    with mock.patch.dict(
        os.environ, {"MLFLOW_TRACKING_URI": uri, OVERRIDES_ENV: parameters.get(OVERRIDES, "") or "{}"}
    ):
        configure(load_params(root / PARAMS_FILE))


def secret_notes(templates: dict[str, dict[str, Any]]) -> list[str]:
    """One line per variable a container reads from the cluster (a secret, a config map), and what happens here."""
    notes = {}
    for template in templates.values():
        for var in (template.get("container") or {}).get("env") or []:
            source = var.get("valueFrom")
            if "value" in var or not source:
                continue
            kind, ref = next(iter(source.items()))
            ref = ref if isinstance(ref, dict) else {}
            what = f"{kind} {ref.get('name', '?')}/{ref.get('key', '?')}"
            here = "taken from this environment" if var["name"] in os.environ else "not set here, left unset"
            notes[var["name"]] = f"env {var['name']} ({what}) is not read from the cluster: {here}"
    return list(notes.values())


def _environment(container: dict[str, Any], values: dict[str, Any], where: str) -> dict[str, str]:
    """This process's environment (PATH with the project environment first, as the image has it) plus the env."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    for var in container.get("env") or []:
        if "value" in var:
            env[var["name"]] = substitute(str(var["value"]), values, f"{where} env {var['name']}")
        elif var["name"] not in os.environ:
            env.pop(var["name"], None)
    return env


class Pod:
    """Where one task's container paths land: its working directory is the task's workspace."""

    def __init__(self, workspace: Path, working_dir: str) -> None:
        self.workspace = workspace
        self.working_dir = working_dir.rstrip("/") or "/"

    def path(self, declared: str, what: str) -> Path:
        if not declared.startswith("/"):
            return self.workspace / declared
        relative = os.path.relpath(declared, self.working_dir)
        if relative.startswith(".."):
            raise ParamsError(
                f"{what}: {declared} is outside the working directory {self.working_dir}; run-local maps only that"
            )
        return self.workspace if relative == "." else self.workspace / relative

    def argument(self, text: str) -> str:
        """An argument naming a path in the working directory points into the workspace instead."""
        if text == self.working_dir or text.startswith(self.working_dir + "/"):
            return str(self.path(text, "argument"))
        return text


def _copy(source: Path, target: Path) -> None:
    if target.is_dir():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        shutil.copy2(source, target)


# --- one task --------------------------------------------------------------------------------------


@dataclass
class Run:
    """One run of a workflow: where it happens and what every finished task left."""

    root: Path
    folder: Path
    templates: dict[str, dict[str, Any]]
    parameters: dict[str, str]
    image: list[str]
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
            target = pod.path(substitute(artifact["path"], scope, where), f"{where} input artifact {artifact['name']}")
            scope[f"inputs.artifacts.{artifact['name']}.path"] = artifact["path"]
            source = handed.get(artifact["name"])
            if source is not None:
                _copy(source, target)
            elif "raw" in artifact:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(str(artifact["raw"].get("data", "")), encoding="utf-8")
            elif not artifact.get("optional"):
                raise ParamsError(f"{where}: input artifact {artifact['name']} is handed no file (arguments.artifacts)")
        command = [
            pod.argument(substitute(str(part), scope, f"{where} container"))
            for part in [*(container.get("command") or []), *(container.get("args") or [])]
        ]
        if not container.get("command"):
            raise ParamsError(f"{where}: the container has no command (the image's entrypoint is not known here)")
        return self.launch(name, command, _environment(container, scope, where), pod, template)

    def launch(self, name: str, command: list[str], env: dict[str, str], pod: Pod, template: dict[str, Any]) -> Outcome:
        logs = self.folder / "logs"
        logs.mkdir(exist_ok=True)
        program = shutil.which(command[0], path=env["PATH"]) or command[0]
        started = time.monotonic()
        stdout, stderr = logs / f"{name}.out", logs / f"{name}.err"
        with stdout.open("wb") as out, stderr.open("wb") as err:
            try:
                returncode = subprocess.run(
                    [program, *command[1:]], cwd=pod.workspace, env=env, stdout=out, stderr=err
                ).returncode
            except OSError as exc:
                return Outcome("Failed", time.monotonic() - started, f"cannot start {command[0]}: {exc}")
        seconds = time.monotonic() - started
        if returncode != 0:
            tail = stderr.read_text(encoding="utf-8", errors="replace").splitlines()[-LOG_TAIL:]
            reason = f"`{' '.join(command)}` exited {returncode} (log: {stderr})"
            return Outcome("Failed", seconds, reason, "".join(f"\n    {line}" for line in tail))
        return self.collect(name, template, pod, seconds, stdout)

    def collect(self, name: str, template: dict[str, Any], pod: Pod, seconds: float, stdout: Path) -> Outcome:
        """The task's declared outputs; a missing one fails the task, naming artifact and path."""
        outputs = template.get("outputs") or {}
        outcome = Outcome("Succeeded", seconds)
        outcome.values["outputs.result"] = stdout.read_text(encoding="utf-8", errors="replace").strip()
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
                    outcome.values[key] = path.read_text(encoding="utf-8").rstrip("\n")
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


def order(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tasks in an order that runs every task after those it waits for (file order among equals)."""
    names = [task["name"] for task in tasks]
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
    width = max(len(task["name"]) for task in tasks)
    for task in tasks:
        name = task["name"]
        met, why = ready(task, run.done)
        if not met:
            outcome = Outcome("Omitted", reason=why)
        elif task.get("when") and not when_holds(str(task["when"]), run.dag_values(), f"task {name} when"):
            outcome = Outcome("Skipped", reason=f"when {task['when']!r} is false")
        else:
            outcome = run.execute(task)
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
    report: Callable[[str], None] = lambda line: print(line, flush=True),
) -> str:
    """`pipeline run-local`: run pipelines/<name>.yaml here; TaskFailed naming the task if one fails."""
    from .submit import overrides

    doc = load_workflow(root, name)
    spec = doc.get("spec") or {}
    templates = {t["name"]: t for t in spec.get("templates") or []}
    values = workflow_parameters(root, spec, overrides(assignments), _assignments(parameters, "-p"))
    image = image_files(root)
    folder = _new_folder(workdir, name)
    prepare_store(root, values)
    run = Run(root, folder, templates, values, image)
    report(f"{name}: running {root / PIPELINES / name}.yaml task by task in {run.folder}")
    for note in secret_notes(templates):
        report(f"  note: {note}")
    done = run_dag(run, str(spec.get("entrypoint", "")), report)
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
