"""`pipeline run-local`: the rendered workflow YAML, run task by task here, does what Argo and `make all` do."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from mlops_runtime.argo import container, parameters
from mlops_runtime.argo.expressions import MAX_DEPTH, depends_met, substitute, when_holds
from mlops_runtime.argo.render import load_module
from mlops_runtime.argo.run_local import declared_paths
from mlops_runtime.argo.workspace import Pod, image_files
from mlops_runtime.cli import EXIT_BAD_INPUT, EXIT_TASK_FAILED, main
from mlops_runtime.config import load_params
from mlops_runtime.errors import ParamsError
from mlops_runtime.sample_data import write_sample

from .conftest import PACKAGE, PROJECT_ROOT, edit_params

PYTHON = ["python", "-c"]


def ph(name: str) -> str:
    """An Argo placeholder, `{` `{name}` `}` (built here so that copier leaves it alone)."""
    return "{" * 2 + name + "}" * 2


@pytest.mark.parametrize(
    ("expression", "phases", "expected"),
    [
        ("a", {"a": "Succeeded"}, True),
        ("a", {"a": "Skipped"}, True),  # a bare name: Succeeded, Skipped or Daemoned
        ("a", {"a": "Omitted"}, False),
        ("a", {"a": "Failed"}, False),
        ("a.Failed", {"a": "Failed"}, True),
        ("a.Succeeded", {"a": "Skipped"}, False),
        ("a && (b.Succeeded || c.Failed)", {"a": "Succeeded", "b": "Failed", "c": "Failed"}, True),
        ("a && (b.Succeeded || c.Failed)", {"a": "Succeeded", "b": "Failed", "c": "Succeeded"}, False),
        ("!a.Succeeded || b", {"a": "Succeeded", "b": "Omitted"}, False),
        ("data-raw.Succeeded && train", {"data-raw": "Succeeded", "train": "Succeeded"}, True),
    ],
)
def test_depends_expressions(expression: str, phases: dict[str, str], expected: bool) -> None:
    assert depends_met(expression, phases) is expected


def test_when_conditions_after_substitution() -> None:
    """Plain conditions compare the substituted text; `=` expressions read parameters (jsonpath)."""
    gate = ph("=jsonpath(tasks.evaluate.outputs.parameters.gate, '$.passed') == true")
    assert when_holds(gate, {"tasks.evaluate.outputs.parameters.gate": '{"passed": true}'}, "when")
    assert not when_holds(gate, {"tasks.evaluate.outputs.parameters.gate": '{"passed": false}'}, "when")
    coin = ph("tasks.flip.outputs.result") + " == heads"
    assert when_holds(coin, {"tasks.flip.outputs.result": "heads"}, "when")
    assert not when_holds(coin, {"tasks.flip.outputs.result": "tails"}, "when")
    assert when_holds(ph("inputs.parameters.n") + " > 2 && true", {"inputs.parameters.n": "3"}, "when")
    with pytest.raises(ParamsError, match=re.escape("task x: unknown placeholder " + ph("workflow.parameters.nope"))):
        substitute("a " + ph("workflow.parameters.nope"), {"workflow.parameters.seed": "1"}, "task x")


@pytest.mark.parametrize(
    "expression",
    ["(" * 5000 + "a" + ")" * 5000, "asInt(" * 5000 + "1" + ")" * 5000],
    ids=["parentheses", "calls"],
)
def test_deeply_nested_expressions_are_refused_by_name(expression: str) -> None:
    """5,000 levels give a clear error naming the field, never a RecursionError; a few levels still work."""
    where = "task x when"
    refused = rf"{where}: cannot evaluate '.*'\.\.\. \(\d+ characters\): nests deeper than {MAX_DEPTH} levels"
    with pytest.raises(ParamsError, match=refused):
        when_holds(expression, {}, where)
    with pytest.raises(ParamsError, match=refused):
        substitute(ph("=" + expression), {"a": 1}, where)
    with pytest.raises(ParamsError, match=f"nests deeper than {MAX_DEPTH} levels"):
        depends_met(expression.replace("asInt(", "("), {"a": "Succeeded"})
    assert depends_met("(" * 10 + "a" + ")" * 10, {"a": "Succeeded"})
    assert when_holds("(" * 10 + "1 < 2" + ")" * 10, {}, where)


def test_many_negations_are_counted_not_nested() -> None:
    """`!` repeated 5,000 times flips the value 5,000 times, without a level of recursion each."""
    assert when_holds("!" * 5000 + "(1 < 2)", {}, "when") is True
    assert when_holds("!" * 5001 + "(1 < 2)", {}, "when") is False
    assert depends_met("!" * 4999 + "a", {"a": "Failed"}) is True


def task_template(name: str, code: str, inputs: dict | None = None, outputs: dict | None = None) -> dict:
    return {
        "name": name,
        "inputs": inputs or {},
        "outputs": outputs or {},
        "container": {"image": "x", "workingDir": "/app", "command": PYTHON, "args": [code]},
    }


def small_workflow() -> dict:
    """Each of depends, when, artifacts and parameters once; one task fails on purpose."""
    param = ph("inputs.parameters.word")
    templates = [
        task_template("flip", "print('heads')"),
        task_template(
            "make",
            f"import pathlib; pathlib.Path('out').mkdir(); pathlib.Path('out/word.txt').write_text('{param}')",
            inputs={"parameters": [{"name": "word"}]},
            outputs={
                "artifacts": [{"name": "word", "path": "/app/out"}],
                "parameters": [{"name": "word", "valueFrom": {"path": "/app/out/word.txt"}}],
            },
        ),
        task_template(
            "use",
            "import pathlib; pathlib.Path('seen.txt').write_text(pathlib.Path('in/word.txt').read_text())",
            inputs={"artifacts": [{"name": "word", "path": "/app/in"}]},
        ),
        task_template("fail", "import sys; print('broken on purpose', file=sys.stderr); sys.exit(3)"),
    ]
    word_from = ph("tasks.make.outputs.artifacts.word")
    result = ph("tasks.flip.outputs.result")
    said = ph("tasks.make.outputs.parameters.word")
    tasks = [
        {"name": "flip", "template": "flip"},
        {
            "name": "make",
            "template": "make",
            "depends": "flip",
            "arguments": {"parameters": [{"name": "word", "value": ph("workflow.parameters.word")}]},
        },
        {
            "name": "use",
            "template": "use",
            "depends": "make.Succeeded",
            "arguments": {"artifacts": [{"name": "word", "from": word_from}]},
        },
        {"name": "heads", "template": "flip", "depends": "flip", "when": f"{result} == heads"},
        {"name": "tails", "template": "flip", "depends": "flip", "when": f"{result} == tails"},
        {"name": "said", "template": "flip", "depends": "make", "when": f"{said} == hello"},
        {"name": "fail", "template": "fail", "depends": "flip"},
        {"name": "rescue", "template": "flip", "depends": "fail.Failed || fail.Errored"},
        {"name": "after-fail", "template": "flip", "depends": "fail && use"},
    ]
    templates.append({"name": "main", "dag": {"tasks": tasks}})
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "small"},
        "spec": {
            "entrypoint": "main",
            "arguments": {"parameters": [{"name": "word", "value": "hello"}]},
            "templates": templates,
        },
    }


@pytest.fixture
def small_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "project"
    (root / "pipelines").mkdir(parents=True)
    (root / ".dockerignore").write_text("*\n!keep.txt\n")
    (root / "keep.txt").write_text("in the image\n")
    (root / "left-out.txt").write_text("not in the image\n")
    (root / "pipelines/small.yaml").write_text(yaml.safe_dump(small_workflow(), sort_keys=False))
    monkeypatch.chdir(root)
    return root


def task_phases(out: str) -> dict[str, str]:
    """Each task's phase, from the lines `run-local` prints."""
    return {line.split()[0]: line.split()[2] for line in out.splitlines() if line.startswith("  ")}


def test_a_small_workflow_runs_in_dependency_order(small_project: Path, tmp_path: Path, capsys) -> None:
    """Artifacts and parameters pass on, `when` skips, `depends` follows results, the failed task is named."""
    run = tmp_path / "run"
    assert main(["pipeline", "run-local", "--workflow", "small", "--workdir", str(run)]) == EXIT_TASK_FAILED
    captured = capsys.readouterr()
    assert task_phases(captured.out) == {
        "flip": "Succeeded",
        "make": "Succeeded",
        "use": "Succeeded",
        "heads": "Succeeded",
        "tails": "Skipped",
        "said": "Succeeded",
        "fail": "Failed",
        "rescue": "Succeeded",
        "after-fail": "Skipped",
    }
    assert "task fail failed" in captured.err and "exited 3" in captured.err and "broken on purpose" in captured.err
    assert (run / "use/seen.txt").read_text() == "hello"
    # Each task's workspace is the image: what .dockerignore lets in, nothing else of the project.
    assert (run / "flip/keep.txt").exists() and not (run / "flip/left-out.txt").exists()


def test_unknown_placeholder_and_workflow_are_bad_input(small_project: Path, tmp_path: Path, capsys) -> None:
    doc = small_workflow()
    doc["spec"]["templates"][0]["container"]["args"] = ["print('" + ph("inputs.parameters.missing") + "')"]
    (small_project / "pipelines/small.yaml").write_text(yaml.safe_dump(doc))
    assert main(["pipeline", "run-local", "--workflow", "small", "--workdir", str(tmp_path / "a")]) == EXIT_BAD_INPUT
    assert "task flip container: unknown placeholder " + ph("inputs.parameters.missing") in capsys.readouterr().err
    assert main(["pipeline", "run-local", "--workflow", "monitoring"]) == EXIT_BAD_INPUT
    assert "the workflows there are small" in capsys.readouterr().err


def run_workflow(project: Path, doc: dict, workdir: Path) -> int:
    """`pipeline run-local` of `doc`, written as pipelines/small.yaml."""
    (project / "pipelines/small.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return main(["pipeline", "run-local", "--workflow", "small", "--workdir", str(workdir)])


def templates_of(doc: dict) -> dict:
    return {t["name"]: t for t in doc["spec"]["templates"]}


def victim(tmp_path: Path) -> Path:
    """A folder outside the run, with a file a run must neither read, replace nor remove."""
    folder = tmp_path / "victim"
    folder.mkdir(exist_ok=True)
    (folder / "secret.txt").write_text("outside the workdir\n")
    return folder


@pytest.mark.parametrize(
    ("template", "side", "what"),
    [
        ("use", "inputs", "input artifact word"),
        ("make", "outputs", "output artifact word"),
        ("make", "parameter", "output parameter word"),
    ],
)
def test_a_relative_path_out_of_the_workdir_is_refused_before_any_task_runs(
    small_project: Path, tmp_path: Path, capsys, template: str, side: str, what: str
) -> None:
    """`../../..` in a declared path is refused naming task and path; nothing outside is read, replaced or removed."""
    outside = victim(tmp_path)
    doc = small_workflow()
    declared = templates_of(doc)[template]
    escape = "../../../victim"  # from <workdir>/<task>: the folder beside the workdir
    if side == "parameter":
        declared["outputs"]["parameters"][0]["valueFrom"]["path"] = escape + "/secret.txt"
    else:
        declared[side]["artifacts"][0]["path"] = escape
    run = tmp_path / "runs/run"
    assert run_workflow(small_project, doc, run) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert f"task {template} {what}: {escape}" in err and "is outside the working directory /app" in err, err
    assert (outside / "secret.txt").read_text() == "outside the workdir\n" and sorted(outside.iterdir()) == [
        outside / "secret.txt"
    ]
    assert not (run / "flip").exists(), "refused before the first task"


def test_a_path_given_by_a_placeholder_is_checked_where_it_is_used(small_project: Path, tmp_path: Path, capsys) -> None:
    """An input artifact path that a parameter makes `../../..` is refused when the task is laid out."""
    outside = victim(tmp_path)
    doc = small_workflow()
    use = templates_of(doc)["use"]
    use["inputs"]["parameters"] = [{"name": "where", "value": "../../../victim"}]
    use["inputs"]["artifacts"][0]["path"] = ph("inputs.parameters.where")
    assert run_workflow(small_project, doc, tmp_path / "runs/run") == EXIT_BAD_INPUT
    assert "task use input artifact word: ../../../victim is outside the working directory" in capsys.readouterr().err
    assert sorted(outside.iterdir()) == [outside / "secret.txt"]


def test_a_link_out_of_the_workspace_is_never_followed(small_project: Path, tmp_path: Path, capsys) -> None:
    """A task that makes its output a symbolic link to a folder outside fails, naming the artifact; the next
    task gets nothing; an output parameter read through a link is refused the same way."""
    outside = victim(tmp_path)
    doc = small_workflow()
    make = templates_of(doc)["make"]
    make["container"]["args"] = [
        f"import os; os.symlink({str(outside)!r}, 'out'); os.symlink({str(outside / 'secret.txt')!r}, 'said.txt')"
    ]
    make["outputs"]["parameters"][0]["valueFrom"]["path"] = "/app/said.txt"
    run = tmp_path / "run"
    assert run_workflow(small_project, doc, run) == EXIT_TASK_FAILED
    err = capsys.readouterr().err
    assert f"task make failed: task make output artifact word: /app/out resolves to {outside.resolve()}, outside" in err
    assert not (run / "use").exists() and (outside / "secret.txt").exists()

    make["outputs"]["artifacts"] = []
    assert run_workflow(small_project, doc, tmp_path / "run2") == EXIT_TASK_FAILED
    err = capsys.readouterr().err
    assert f"task make output parameter word: /app/said.txt resolves to {outside.resolve() / 'secret.txt'}" in err


def test_a_log_the_task_swaps_for_a_link_is_not_read_through_it(small_project: Path, tmp_path: Path, capsys) -> None:
    """The task's output (`result`) is read from what it wrote, not from a link it left at the log's path."""
    outside = victim(tmp_path)
    doc = small_workflow()
    swap = f"import os; os.remove('../logs/flip.out'); os.symlink({str(outside / 'secret.txt')!r}, '../logs/flip.out')"
    templates_of(doc)["flip"]["container"]["args"] = [f"{swap}; print('heads')"]
    assert run_workflow(small_project, doc, tmp_path / "run") == EXIT_TASK_FAILED  # the `fail` task, on purpose
    phases = task_phases(capsys.readouterr().out)
    assert phases["heads"] == "Succeeded" and phases["tails"] == "Skipped", phases


def test_an_output_parameter_over_the_limit_fails_its_task(small_project: Path, tmp_path: Path, capsys) -> None:
    """A parameter file of 2 MiB is not read into memory: the task fails, naming the parameter."""
    doc = small_workflow()
    templates_of(doc)["make"]["container"]["args"] = [
        "import pathlib; pathlib.Path('out').mkdir(); pathlib.Path('out/word.txt').write_text('x' * 2**21)"
    ]
    assert run_workflow(small_project, doc, tmp_path / "run") == EXIT_TASK_FAILED
    err = capsys.readouterr().err
    assert "task make failed: output parameter word: " in err and f"holds over {2**20} bytes" in err, err


def test_an_image_file_that_is_a_link_is_copied_as_a_link(small_project: Path, tmp_path: Path) -> None:
    """As the image build's COPY does: the link's target outside the project is not read."""
    outside = victim(tmp_path)
    (small_project / ".dockerignore").write_text("*\n!keep.txt\n!linked.txt\n")
    (small_project / "linked.txt").symlink_to(outside / "secret.txt")
    run = tmp_path / "run"
    assert run_workflow(small_project, small_workflow(), run) == EXIT_TASK_FAILED  # the `fail` task, on purpose
    copied = run / "flip/linked.txt"
    assert copied.is_symlink() and os.readlink(copied) == str(outside / "secret.txt")


@pytest.mark.parametrize("name", ["../../x", "logs", "a/b", "-x", ""])
def test_task_names_are_slugs(small_project: Path, tmp_path: Path, capsys, name: str) -> None:
    """A task named `../../x` would put its workspace outside the workdir: refused, naming it, before any task."""
    doc = small_workflow()
    tasks = templates_of(doc)["main"]["dag"]["tasks"]
    tasks[-1]["name"] = name  # after-fail: no task waits for it
    run = tmp_path / "runs/run"
    assert run_workflow(small_project, doc, run) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert f"task name {name!r}: a task's name is letters, digits and '-'" in err, err
    assert not (tmp_path / "x").exists() and not (run / "flip").exists()


def alive(pid: int) -> bool:
    """Whether process `pid` still runs (a zombie waiting for its parent counts as ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def wait_for(check, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_the_running_task_and_its_processes(small_project: Path, tmp_path: Path, sig) -> None:
    """run-local told to stop stops the task's whole process group, then exits non-zero naming the task."""
    child = "import os, time; open('child.pid', 'w').write(str(os.getpid())); time.sleep(120)"
    code = (
        "import os, subprocess, sys, time; subprocess.Popen([sys.executable, '-c', " + repr(child) + "]); "
        "open('task.pid', 'w').write(str(os.getpid())); time.sleep(120)"
    )
    doc = small_workflow()
    templates_of(doc)["flip"]["container"]["args"] = [code]
    (small_project / "pipelines/small.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    run = tmp_path / "run"
    command = [sys.executable, "-m", PACKAGE, "pipeline", "run-local", "--workflow", "small"]
    process = subprocess.Popen(
        [*command, "--workdir", str(run)], cwd=small_project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        files = [run / "flip/task.pid", run / "flip/child.pid"]
        assert wait_for(lambda: all(f.exists() and f.read_text() for f in files)), process.communicate(timeout=5)
        task, grandchild = (int(f.read_text()) for f in files)
        process.send_signal(sig)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == EXIT_TASK_FAILED, (process.returncode, err)
    assert f"stopped by {sig.name} while task flip was running: its processes were stopped" in err, err
    assert wait_for(lambda: not alive(task) and not alive(grandchild), 10), "the task's processes outlived run-local"


def test_the_rendered_workflow_declares_the_parameters_given_local_values() -> None:
    """revision, params-overrides and the tracking URI get their local meaning by these names."""
    spec = yaml.safe_load(load_module(PROJECT_ROOT, "training").workflow.to_yaml())["spec"]
    declared = {p["name"] for p in spec["arguments"]["parameters"]}
    assert {parameters.REVISION, parameters.OVERRIDES, parameters.TRACKING_URI} <= declared


def measured(path: Path) -> dict | list:
    """A JSON report without the MLflow run it came from (each run has its own id)."""
    data = json.loads(path.read_text())
    return {k: v for k, v in data.items() if k != "run_id"} if isinstance(data, dict) else data


def dvc(project: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "dvc", *args], cwd=project, check=True, capture_output=True)


@pytest.fixture(scope="module")
def training_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throwaway copy of this project (the image's files, small data in its own DVC remote), run by `dvc repro`
    and `register` as `make all` runs them; pipelines/ holds the training YAML the module renders."""
    base = tmp_path_factory.mktemp("training")
    project = base / "project"
    for relative in image_files(PROJECT_ROOT):
        if not relative.startswith(".dvc/"):
            (project / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PROJECT_ROOT / relative, project / relative)
    (project / "pipelines").mkdir()
    (project / "pipelines/training.yaml").write_text(load_module(PROJECT_ROOT, "training").workflow.to_yaml())
    (project / ".dockerignore").write_text((PROJECT_ROOT / ".dockerignore").read_text())
    (project / "data/raw.dvc").unlink(missing_ok=True)
    search = {"method": "grid", "cv_folds": 2, "scoring": "roc_auc", "space": {"max_iter": [60], "max_depth": [3]}}
    edit_params(project, train={"search": search})
    write_sample(project / load_params(project / "params.yaml").ingest.source, rows=2000, seed=11)
    dvc(project, "init", "--no-scm")
    dvc(project, "remote", "add", "-d", "storage", str(base / "remote"))
    dvc(project, "add", "data/raw")
    dvc(project, "push")
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{base / 'make-all.db'}"}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env["PATH"]])
    for command in (["dvc", "repro"], ["python", "-m", PACKAGE, "register"]):
        subprocess.run(command, cwd=project, env=env, check=True, capture_output=True)
    return project


def test_run_local_gives_the_results_of_make_all(training_project: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    """Same held-out metrics and gate as `dvc repro`; the model is registered in the local store."""
    store = f"sqlite:///{tmp_path / 'run-local.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.chdir(training_project)
    run = tmp_path / "run"
    assert main(["pipeline", "run-local", "--workdir", str(run)]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert all(f"  {task} " in out for task in ("data-raw", "train", "evaluate", "register")), out
    assert "Failed" not in out and "Skipped" not in out

    params = load_params(training_project / "params.yaml")
    for report in (params.paths.metrics, params.paths.gate, params.paths.slices):
        assert measured(run / "evaluate" / report) == measured(training_project / report), report
    assert measured(run / "evaluate" / params.paths.gate)["passed"] is True
    client = MlflowClient(tracking_uri=store)
    assert int(client.get_model_version_by_alias(params.registry.model_name, "challenger").version) == 1
    # Artifacts sit beside the store, as with `make all`, not in a task's workspace.
    experiment = client.get_experiment_by_name(params.mlflow.experiment)
    assert experiment.artifact_location == (training_project / "mlartifacts").as_uri()


def test_a_broken_artifact_path_fails_naming_the_task(
    training_project: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    """A copy of the YAML whose first task declares an output it never writes stops there, naming it."""
    monkeypatch.chdir(training_project)
    text = (training_project / "pipelines/training.yaml").read_text()
    broken = training_project / "pipelines/broken.yaml"
    broken.write_text(text.replace("path: /app/data/raw\n", "path: /app/data/raw-missing\n", 1))
    try:
        code = main(["pipeline", "run-local", "--workflow", "broken", "--workdir", str(tmp_path / "run")])
    finally:
        broken.unlink()
    captured = capsys.readouterr()
    assert code == EXIT_TASK_FAILED
    assert "task data-raw failed: output artifact data-raw: /app/data/raw-missing was not written" in captured.err
    assert "  ingest " in captured.out and "Skipped" in captured.out


# --- --image: each task in the project image --------------------------------------------------------


def training_task(name: str) -> tuple[dict, dict]:
    """A task's container template of the rendered training workflow, and the workflow's spec."""
    spec = yaml.safe_load(load_module(PROJECT_ROOT, "training").workflow.to_yaml())["spec"]
    return next(t for t in spec["templates"] if t["name"] == name), spec


def docker_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spec: dict, template: dict) -> list[str]:
    """The `docker run` arguments the train task gets (the engine's answer about the image faked)."""
    monkeypatch.setattr(container, "image_user", lambda image: "4242")
    engine = container.Engine("churn:test", spec)
    pod = Pod(tmp_path / "train", "/app")
    scope = {"workflow.parameters.revision": "abc", "workflow.parameters.params-overrides": "{}"}
    scope["workflow.parameters.mlflow-tracking-uri"] = f"sqlite:///{tmp_path}/mlflow/mlflow.db"
    command = [*template["container"]["command"], *template["container"].get("args", [])]
    declared = [(what, path) for what, path in declared_paths(template)]
    return engine.command("train", template, pod, command, scope, declared)


def test_image_command_runs_the_task_as_its_pod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Command, env, user, security context, limits and the declared folders mounted: as the pod spec says."""
    template, spec = training_task("train")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "secret-value")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    argv = docker_command(tmp_path, monkeypatch, spec, template)
    options, image_and_args = argv[: argv.index("--")], argv[argv.index("--") + 1 :]
    assert options[:2] == ["docker", "run"]
    assert image_and_args == ["churn:test", *template["container"]["command"][1:]]
    assert f"--entrypoint={template['container']['command'][0]}" in options
    security = spec["securityContext"]
    assert f"--user={security['runAsUser']}:{security['runAsGroup']}" in options
    assert "--cap-drop=ALL" in options and "--security-opt=no-new-privileges" in options
    limits = template["container"]["resources"]["limits"]
    cpu = float(limits["cpu"][:-1]) / 1000 if limits["cpu"].endswith("m") else float(limits["cpu"])
    assert f"--cpus={min(cpu, float(os.cpu_count()))}" in options
    assert f"--memory={int(limits['memory'][:-2]) * 2 ** {'Mi': 20, 'Gi': 30}[limits['memory'][-2:]]}" in options
    assert "--workdir=/app" in options
    assert f"--env=MLFLOW_TRACKING_URI=sqlite:///{tmp_path}/mlflow/mlflow.db" in options
    # A secret's variable is handed by name, from this environment, and only when it is set here.
    assert "--env=AWS_ACCESS_KEY_ID" in options and "secret-value" not in " ".join(argv)
    assert not any(option.startswith("--env=AWS_SECRET_ACCESS_KEY") for option in options)
    mounts = {option.split("target=")[1] for option in options if option.startswith("--mount=")}
    assert mounts == {"/app/data", "/app/models"}  # the image's code and environment stay as built
    assert (tmp_path / "train/models").is_dir()
    assert "--read-only" not in options  # the rendered workflow leaves the root file system writable


def test_image_command_follows_a_read_only_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """readOnlyRootFilesystem gives a read-only root with a tmpfs /tmp."""
    template, spec = training_task("train")
    template["container"]["securityContext"]["readOnlyRootFilesystem"] = True
    options = docker_command(tmp_path, monkeypatch, spec, template)
    assert "--read-only" in options and "--tmpfs=/tmp:rw,mode=1777" in options


def fake_docker(folder: Path, stderr: str, code: int) -> None:
    folder.mkdir()
    script = folder / "docker"
    script.write_text(f"#!/bin/sh\necho {stderr!r} >&2\nexit {code}\n")
    script.chmod(0o755)


@pytest.mark.parametrize("engine", ["no-cli", "no-image"])
def test_image_without_docker_or_image_is_bad_input(
    small_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, engine: str
) -> None:
    """No docker CLI, or an image the engine lacks: a message saying what to do, exit code, no workdir."""
    bin_dir = tmp_path / "bin"
    if engine == "no-cli":
        bin_dir.mkdir()
    else:
        fake_docker(bin_dir, "Error response from daemon: No such image: churn:missing", 1)
    monkeypatch.setenv("PATH", str(bin_dir))
    run = tmp_path / "run"
    code = main(["pipeline", "run-local", "--workflow", "small", "--workdir", str(run), "--image", "churn:missing"])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT
    if engine == "no-cli":
        assert "docker CLI, which is not on PATH" in err
    else:
        assert "--image churn:missing: the Docker engine has no such image" in err and "make image" in err
    assert not run.exists()


def test_an_image_name_that_reads_as_an_option_is_refused(small_project: Path, tmp_path: Path, capsys) -> None:
    code = main(["pipeline", "run-local", "--workflow", "small", "--workdir", str(tmp_path / "r"), "--image=-v"])
    assert code == EXIT_BAD_INPUT and "is not an image reference" in capsys.readouterr().err


def test_local_remotes_are_read_from_dvc_config_not_its_listing(tmp_path: Path) -> None:
    """The folder remotes a container run mounts: the default one too (`dvc remote list` appends "(default)"
    to its URL), a relative URL made absolute, and no URL remote."""
    subprocess.run(["git", "init", "--quiet", str(tmp_path)], check=True)
    dvc = [sys.executable, "-m", "dvc"]
    subprocess.run([*dvc, "init", "--quiet"], cwd=tmp_path, check=True)
    (tmp_path / "store with space").mkdir()
    subprocess.run(
        [*dvc, "remote", "add", "--default", "storage", str(tmp_path / "store with space")], cwd=tmp_path, check=True
    )
    subprocess.run([*dvc, "remote", "add", "near", "../near"], cwd=tmp_path, check=True)
    subprocess.run([*dvc, "remote", "add", "cloud", "s3://bucket/path"], cwd=tmp_path, check=True)
    assert sorted(container.local_remotes(tmp_path)) == sorted(
        [str(tmp_path / "store with space"), str(tmp_path.parent / "near")]
    )
