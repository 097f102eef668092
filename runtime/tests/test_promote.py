"""Promotion: every gate refuses with its own exit code, and a promotion changes only the pin file."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import mlflow
import pytest
import yaml
from mlflow import MlflowClient

from mlops_runtime import cli
from mlops_runtime.config import load_params
from mlops_runtime.lineage import git_dirty, pipeline_outputs
from mlops_runtime.sample_data import write_sample

from .conftest import ANSWERS, MODEL_NAME, PROJECT_ROOT, SLUG, edit_params, stage_modules

evaluate, featurize, ingest, register, train, validate = stage_modules(
    "evaluate", "featurize", "ingest", "register", "train", "validate"
)

MODEL = MODEL_NAME
PIN = "deploy/overlays/{env}/model.yaml"
# Recorded in the registry but not part of the project's files.
NOT_PROJECT = {".git", "mlflow.db", "mlartifacts"}


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project folder with a real local registry: version 1 trained here, 2 scores better, 3 fails the criteria,
    4 scores best but was trained from uncommitted changes."""
    root = tmp_path_factory.mktemp("promote") / "project"
    root.mkdir()
    for name in ("params.yaml", ".copier-answers.yml", "model_card.md"):
        shutil.copy(PROJECT_ROOT / name, root / name)
    shutil.copytree(PROJECT_ROOT / "deploy", root / "deploy")
    params = load_params(root / "params.yaml")
    write_sample(root / params.ingest.source, rows=2000, seed=5)
    search = {"method": "grid", "cv_folds": 2, "scoring": "roc_auc", "space": {"max_iter": [40], "max_depth": [3]}}
    edit_params(root, train={"search": search})
    params = load_params(root / "params.yaml")
    git(root, "init", "--quiet", "--initial-branch=main")
    git(root, "add", "params.yaml", ".copier-answers.yml", "model_card.md", "deploy")
    git(root, "commit", "--quiet", "-m", "Project")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        for stage in (ingest, validate, featurize, train, evaluate, register):
            stage.main(params)
        client = MlflowClient()
        first = client.get_model_version(MODEL, "1")
        measured = json.loads(first.tags["evaluation"])
        assert first.tags["git_dirty"] == "false"
        variants = {
            "2": ({**measured, "roc_auc": measured["roc_auc"] + 0.02}, "false"),
            "3": ({**measured, "f1": 0.1}, "false"),
            "4": ({**measured, "roc_auc": measured["roc_auc"] + 0.03}, "true"),
        }
        for number, (evaluation, dirty) in variants.items():
            tags = {**first.tags, "evaluation": json.dumps(evaluation), "git_dirty": dirty}
            made = mlflow.register_model(
                json.loads(params.path("model_info").read_text())["model_uri"], MODEL, tags=tags
            )
            assert made.version == int(number)
    return root


@pytest.fixture
def project(registry: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh copy of the project and its registry for one test."""
    root = tmp_path / "project"
    shutil.copytree(registry, root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    monkeypatch.chdir(root)
    return root


def tree(root: Path) -> dict[str, bytes]:
    """Every project file and its content."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not NOT_PROJECT & set(p.relative_to(root).parts)
    }


def promote(root: Path, *args: str) -> int:
    return cli.main(["promote", "--params", str(root / "params.yaml"), *args])


def pin(root: Path, env: str) -> dict:
    return yaml.safe_load((root / PIN.format(env=env)).read_text())


def test_promotion_changes_only_the_pin_file(project: Path, tmp_path: Path) -> None:
    """Success rewrites deploy/overlays/dev/model.yaml alone, comments kept, and writes the PR body."""
    before = tree(project)
    body = tmp_path / "pr.md"

    assert promote(project, "--env", "dev", "--version", "1", "--body", str(body)) == 0

    after = tree(project)
    assert {path for path in before.keys() | after.keys() if before.get(path) != after.get(path)} == {
        PIN.format(env="dev")
    }
    text = (project / PIN.format(env="dev")).read_text()
    assert text.startswith(before[PIN.format(env="dev")].decode().split("\napiVersion")[0])  # the comments stay
    spec, notes = pin(project, "dev")["spec"], pin(project, "dev")["metadata"]["annotations"]
    version = MlflowClient().get_model_version(MODEL, "1")
    assert spec["version"] == "1"
    assert spec["storageUri"] == MlflowClient().get_model_version_download_uri(MODEL, "1")
    assert spec.get("stopped", "false") == "false" and spec.get("replicas", 1) == 1
    assert notes["model.mlops/mlflow-run"] == version.run_id
    assert notes["model.mlops/git-commit"] == version.tags["git_commit"]
    assert notes["model.mlops/dvc-data-hash"] == version.tags["dvc_data_hash"]
    assert notes["model.mlops/template-version"] != "none"
    markdown = body.read_text()
    for heading in (
        "### Held-out metrics: challenger vs champion",
        "### Slices (bias report)",
        "### Lineage",
        "### Plots",
    ):
        assert heading in markdown
    assert "| roc_auc | >= 0.75 |" in markdown and "| region | north |" in markdown
    assert f"runs:/{version.run_id}/evaluation/roc.csv" in markdown


@pytest.mark.parametrize(
    ("setup", "args", "code", "message"),
    [
        ([], ["--env", "dev", "--version", "99"], 8, "version 99 is not in the MLflow registry"),
        ([], ["--env", "dev", "--version", "3"], 9, "f1 0.1000 is below the minimum"),
        (
            [["--env", "dev", "--version", "2"]],
            ["--env", "dev", "--version", "1"],
            10,
            "worse than the champion of dev",
        ),
        ([], ["--env", "staging", "--version", "1"], 11, "not pinned in dev"),
        ([["--env", "dev", "--version", "1"]], ["--env", "prod", "--version", "1"], 11, "not pinned in staging"),
        ([], ["--env", "dev", "--version", "1", "--allow-worse"], 2, "--allow-worse and --reason TEXT go together"),
        ([], ["--env", "qa", "--version", "1"], 2, "is not an environment"),
        ([], ["--env", "dev", "--version", "v1"], 2, "is not a registry version number"),
        ([], ["--env", "dev", "--version", "$(touch x)"], 2, "is not a registry version number"),
        ([], ["--env", "dev", "--commit", "`touch x`"], 2, "is not a git commit"),
    ],
    ids=[
        "not-in-registry",
        "fails-criteria",
        "worse",
        "skips-dev",
        "skips-staging",
        "no-reason",
        "bad-env",
        "bad-version",
        "version-with-code",
        "commit-with-code",
    ],
)
def test_refusals_change_nothing(
    project: Path, capsys: pytest.CaptureFixture[str], setup: list, args: list, code: int, message: str
) -> None:
    """Each refusal has its exit code and a message that says why, and leaves every file as it was."""
    for earlier in setup:
        assert promote(project, *earlier) == 0
    before = tree(project)
    capsys.readouterr()

    assert promote(project, *args) == code
    assert message in capsys.readouterr().err
    assert tree(project) == before


def test_deliberate_rollback_with_a_reason(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--allow-worse --reason pins a worse version and records why in the pin; the next promotion clears it."""
    assert promote(project, "--env", "dev", "--version", "2") == 0
    assert promote(project, "--env", "dev", "--version", "1", "--allow-worse", "--reason", "v2 times out") == 0
    assert "Deliberately allowed to score worse" in capsys.readouterr().out
    assert pin(project, "dev")["metadata"]["annotations"]["model.mlops/allow-worse-reason"] == "v2 times out"
    assert promote(project, "--env", "dev", "--version", "2") == 0
    assert "model.mlops/allow-worse-reason" not in pin(project, "dev")["metadata"]["annotations"]


def test_dev_staging_prod_then_aliases_follow_git(project: Path) -> None:
    """A version moves through every environment in order; sync sets champion-<env>, and removes it when unpinned."""
    unpinned = (project / PIN.format(env="prod")).read_text()
    for env in ("dev", "staging", "prod"):
        assert promote(project, "--env", env, "--version", "2") == 0
    assert promote(project, "--sync") == 0
    client = MlflowClient()
    for env in ("dev", "staging", "prod"):
        assert str(client.get_model_version_by_alias(MODEL, f"champion-{env}").version) == "2"

    (project / PIN.format(env="prod")).write_text(unpinned)
    assert promote(project, "--sync") == 0
    assert {a for a in client.get_registered_model(MODEL).aliases} == {"challenger", "champion-dev", "champion-staging"}


def test_check_applies_the_gates_to_the_change(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--check passes a pin written by promote; it refuses hand edits that skip a gate or contradict the registry."""
    git(project, "checkout", "--quiet", "-b", "promotion")
    assert promote(project, "--check", "--base", "main") == 0
    assert "no pin file changed" in capsys.readouterr().out
    assert promote(project, "--env", "dev", "--version", "2") == 0
    assert promote(project, "--check", "--base", "main") == 0
    assert "dev: version 2 passes every promotion gate" in capsys.readouterr().out

    dev = (project / PIN.format(env="dev")).read_text()
    edits = {
        # The pin of dev copied to prod by hand: staging never ran it.
        "prod": (dev, 11),
        # Another storage location than the registry's.
        "dev": (dev.replace('storageUri: "', 'storageUri: "s3://elsewhere/'), 12),
    }
    for env, (text, code) in edits.items():
        original = (project / PIN.format(env=env)).read_text()
        (project / PIN.format(env=env)).write_text(text)
        assert promote(project, "--check", "--base", "main") == code, env
        (project / PIN.format(env=env)).write_text(original)

    # Version 3 with its true storage and lineage still fails the success criteria.
    failing = MlflowClient().get_model_version_download_uri(MODEL, "3")
    (project / PIN.format(env="dev")).write_text(
        dev.replace('version: "2"', 'version: "3"').replace(
            MlflowClient().get_model_version_download_uri(MODEL, "2"), failing
        )
    )
    assert promote(project, "--check", "--base", "main") == 9
    assert promote(project, "--check", "--base", "no-such-branch") == 2


def test_check_refuses_a_worse_model_without_a_reason(project: Path) -> None:
    """On the base branch dev runs version 2; a PR that pins version 1 needs a written reason."""
    assert promote(project, "--env", "dev", "--version", "2") == 0
    git(project, "commit", "--quiet", "-am", "Promote 2 to dev")
    git(project, "checkout", "--quiet", "-b", "rollback")
    assert promote(project, "--env", "dev", "--version", "1", "--allow-worse", "--reason", "roll back") == 0
    assert promote(project, "--check", "--base", "main") == 0
    text = (project / PIN.format(env="dev")).read_text()
    without_reason = "".join(line for line in text.splitlines(keepends=True) if "allow-worse-reason" not in line)
    (project / PIN.format(env="dev")).write_text(without_reason)
    assert promote(project, "--check", "--base", "main") == 10


def test_diff_compares_the_workspace_with_an_environment(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The CI comment: this workspace's metrics beside the model pinned in prod (or none)."""
    assert promote(project, "--diff", "--env", "prod") == 0
    assert "prod (nothing pinned)" in capsys.readouterr().out
    for env in ("dev", "staging", "prod"):
        assert promote(project, "--env", env, "--version", "2") == 0
    capsys.readouterr()
    assert promote(project, "--diff", "--env", "prod") == 0
    out = capsys.readouterr().out
    assert "| this change | prod v2 | change |" in out and "| roc_auc | >= 0.75 |" in out and "-0.0200 |" in out


def _pin_by_hand(project: Path, env: str, number: str) -> None:
    """Write the pin of `env` as promote would, gates aside: the version's true storage and lineage."""
    text = (project / PIN.format(env="dev")).read_text()
    current = pin(project, "dev")["spec"]
    client = MlflowClient()
    (project / PIN.format(env=env)).write_text(
        text.replace(f'version: "{current["version"]}"', f'version: "{number}"').replace(
            current["storageUri"], client.get_model_version_download_uri(MODEL, number)
        )
    )


def test_check_takes_its_rules_from_the_base_branch(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A pull request cannot lower the criteria, or drop or add an environment, and pin a model in the same change."""
    assert promote(project, "--env", "dev", "--version", "1") == 0
    git(project, "commit", "--quiet", "-am", "Promote 1 to dev")
    git(project, "checkout", "--quiet", "-b", "lower-the-bar")
    params = yaml.safe_load((project / "params.yaml").read_text())

    # Version 3 fails f1 >= 0.55; the same change lowers the bar and pins it.
    lowered = {**params, "evaluate": {**params["evaluate"], "success_criteria": {"f1": {"min": 0.0}}}}
    (project / "params.yaml").write_text(yaml.safe_dump(lowered, sort_keys=False))
    assert promote(project, "--check", "--base", "main") == 0  # a rule change alone is its own pull request
    _pin_by_hand(project, "dev", "3")
    capsys.readouterr()
    assert promote(project, "--check", "--base", "main") == 13
    err = capsys.readouterr().err
    assert "evaluate.success_criteria" in err and "split it" in err

    # Without the rule change, the base branch's criteria judge the pin: version 3 fails them.
    git(project, "checkout", "--quiet", "main", "--", "params.yaml")
    assert promote(project, "--check", "--base", "main") == 9

    # Dropping prod from the environments while pinning prod, skipping staging.
    git(project, "checkout", "--quiet", "main", "--", "deploy")
    dropped = {**params, "deploy": {**params.get("deploy", {}), "environments": ["dev", "prod"]}}
    (project / "params.yaml").write_text(yaml.safe_dump(dropped, sort_keys=False))
    _pin_by_hand(project, "prod", "1")
    assert promote(project, "--check", "--base", "main") == 13
    git(project, "checkout", "--quiet", "main", "--", "params.yaml", "deploy")

    # A pin in an overlay the base branch does not list.
    shutil.copytree(project / "deploy/overlays/dev", project / "deploy/overlays/qa")
    _pin_by_hand(project, "qa", "2")
    git(project, "add", "deploy")
    capsys.readouterr()
    assert promote(project, "--check", "--base", "main") == 13
    assert "qa: not an environment on main" in capsys.readouterr().err


def test_promotion_pins_the_image_of_the_training_commit(project: Path) -> None:
    """The pin names the image built from the commit that trained the version; a hand-edited tag fails --check."""
    assert promote(project, "--env", "dev", "--version", "2") == 0
    spec = pin(project, "dev")
    commit = MlflowClient().get_model_version(MODEL, "2").tags["git_commit"]
    assert spec["spec"]["image"] == f"{load_params(project / 'params.yaml').argo.image}:{commit}"
    assert spec["spec"].get("suspendDrift", False) is False
    path = project / PIN.format(env="dev")
    path.write_text(path.read_text().replace(f":{commit}", ":latest"))
    assert promote(project, "--check", "--base", "main") == 12


# What an attacker writes right after `spec:`, above the valid keys: kustomize keeps the first of each.
FOREIGN = '  version: "7"\n  storageUri: "s3://elsewhere/model"\n  image: "evil.example.com/x:latest"\n'
LAUGHS = "".join(
    f"  l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9) if n else ', '.join(['lol'] * 9)}]\n" for n in range(12)
)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda text: text.replace("spec:\n", "spec:\n" + FOREIGN, 1), "duplicate key 'image'"),
        (lambda text: text + LAUGHS, "anchors and aliases"),
        (lambda text: text + "  runtime: other-runtime\n", "unknown field spec.runtime"),
        (lambda text: text + '  <<: {image: "evil.example.com/x:latest"}\n', "no merge keys"),
        (lambda text: text.replace(f"model: {MODEL_NAME}", "model: other-project-model"), "register.model_name"),
        (lambda text: text.replace('version: "2"', "version: 2"), "spec.version is 2, it must be a quoted string"),
        (lambda text: text + "---\n" + text, "expected a single document"),
        (lambda text: text.replace("name: model\n", "name: other\n"), "metadata.name must be 'model'"),
    ],
    ids=[
        "duplicate-keys",
        "billion-laughs",
        "unknown-field",
        "merge-key",
        "other-model",
        "unquoted",
        "two-docs",
        "name",
    ],
)
def test_check_reads_the_pin_as_kustomize_does(
    project: Path, capsys: pytest.CaptureFixture[str], edit: object, message: str
) -> None:
    """A pin kustomize and the gate could read differently, or one naming another model, is refused by name."""
    git(project, "checkout", "--quiet", "-b", "hostile")
    assert promote(project, "--env", "dev", "--version", "2") == 0
    path = project / PIN.format(env="dev")
    path.write_text(edit(path.read_text()))  # type: ignore[operator]
    capsys.readouterr()

    assert promote(project, "--check", "--base", "main") == 2
    err = capsys.readouterr().err
    assert message in err and str(Path(PIN.format(env="dev"))) in err, err
    assert promote(project, "--env", "dev", "--version", "2") == 2  # promote reads it the same way


def test_check_finds_pins_whatever_their_path(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An overlay named with a look-alike letter (Cyrillic е in dеv) is seen as a pin and refused by its name."""
    git(project, "checkout", "--quiet", "-b", "lookalike")
    assert promote(project, "--env", "dev", "--version", "2") == 0
    shutil.copytree(project / "deploy/overlays/dev", project / "deploy/overlays/d\u0435v")
    git(project, "checkout", "--quiet", "main", "--", "deploy/overlays/dev")
    git(project, "add", "deploy")
    capsys.readouterr()

    assert promote(project, "--check", "--base", "main") == 2
    err = capsys.readouterr().err
    assert "environment name 'd\u0435v'" in err and "lower-case ASCII" in err, err

    # The same name in params.yaml is refused when params.yaml loads.
    edit_params(project, deploy={"environments": ["d\u0435v", "staging", "prod"]})
    assert promote(project, "--check", "--base", "main") == 2
    assert "deploy.environments" in capsys.readouterr().err


# The same two swaps for each serving runtime: the pin's storage location, and the server's own --model-uri.
STORAGE_PATCH_KSERVE = """\
  - target: {kind: InferenceService, name: {SLUG}}
    patch: |-
      - op: replace
        path: /spec/predictor/model/storageUri
        value: s3://elsewhere/model
"""
MODEL_URI_PATCH_KSERVE = """\
  - target: {kind: ServingRuntime, name: {SLUG}-v2}
    patch: |-
      - op: replace
        path: /spec/containers/0/args/1
        value: s3://elsewhere/model
"""
STORAGE_PATCH_DEPLOYMENT = """\
  - patch: |-
      apiVersion: apps/v1
      kind: Deployment
      metadata: {name: {SLUG}}
      spec:
        template:
          spec:
            containers:
              - name: server
                env:
                  - name: MODEL_URI
                    value: s3://elsewhere/model
"""
MODEL_URI_PATCH_DEPLOYMENT = """\
  - patch: |-
      apiVersion: apps/v1
      kind: Deployment
      metadata: {name: {SLUG}}
      spec:
        template:
          spec:
            containers:
              - name: server
                args: [--model-uri, s3://elsewhere/model]
"""
STORAGE_PATCH, MODEL_URI_PATCH = (
    patch.replace("{SLUG}", SLUG)
    for patch in {
        "kserve": (STORAGE_PATCH_KSERVE, MODEL_URI_PATCH_KSERVE),
        "deployment": (STORAGE_PATCH_DEPLOYMENT, MODEL_URI_PATCH_DEPLOYMENT),
    }[ANSWERS["serving_runtime"]]
)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda text, image: text + f"images:\n  - name: {image}\n    newName: evil.example.com/x\n",
            "evil.example.com/x",
        ),
        (lambda text, image: text + STORAGE_PATCH, "s3://elsewhere/model"),
        (lambda text, image: text + MODEL_URI_PATCH, "the server loads the pinned storageUri only"),
    ],
    ids=["images", "storage-patch", "model-uri-argument"],
)
def test_an_overlay_that_serves_something_else_fails(
    project: Path, capsys: pytest.CaptureFixture[str], edit: object, message: str
) -> None:
    """kustomize builds each overlay: what it serves must be the pin's, though no pin changed."""
    assert promote(project, "--env", "dev", "--version", "2") == 0
    git(project, "commit", "--quiet", "-am", "Promote 2 to dev")
    git(project, "checkout", "--quiet", "-b", "overlay-swap")
    image = pin(project, "dev")["spec"]["image"].rsplit(":", 1)[0]
    kustomization = project / "deploy/overlays/dev/kustomization.yaml"
    assert promote(project, "--check", "--base", "main") == 0
    assert "dev: kustomize serves its pin" in capsys.readouterr().out

    kustomization.write_text(edit(kustomization.read_text(), image))  # type: ignore[operator]
    assert promote(project, "--check", "--base", "main") == 12
    err = capsys.readouterr().err
    assert "kustomize renders something else than the pin" in err and message in err, err
    assert cli.main(["manifests", "validate", "--params", str(project / "params.yaml")]) == 7
    assert message in capsys.readouterr().err


def test_a_model_trained_from_uncommitted_changes_serves_in_dev_only(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Version 4 records git_dirty true: promote and --check let it into dev and refuse it in staging."""
    assert promote(project, "--env", "dev", "--version", "4") == 0
    capsys.readouterr()
    assert promote(project, "--env", "staging", "--version", "4") == 15
    err = capsys.readouterr().err
    assert "uncommitted changes (git_dirty: true)" in err and "not in staging" in err, err

    git(project, "commit", "--quiet", "-am", "Promote 4 to dev")
    git(project, "checkout", "--quiet", "-b", "dirty-to-staging")
    _pin_by_hand(project, "staging", "4")
    assert promote(project, "--check", "--base", "main") == 15


def test_pipeline_outputs_do_not_make_a_model_dirty(tmp_path: Path) -> None:
    """dvc.lock and reports rewritten by the pipeline leave the tree clean; an edited params.yaml does not."""
    shutil.copy(PROJECT_ROOT / "params.yaml", tmp_path / "params.yaml")
    params = load_params(tmp_path / "params.yaml")
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\n")
    params.path("metrics").parent.mkdir(parents=True)
    params.path("metrics").write_text("{}")
    git(tmp_path, "init", "--quiet")
    git(tmp_path, "add", ".")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "-m", "x")
    metrics = params.path("metrics").relative_to(tmp_path).as_posix()
    (tmp_path / "dvc.lock").write_text(f"schema: '2.0'\nstages:\n  evaluate:\n    outs:\n    - path: {metrics}\n")
    params.path("metrics").write_text('{"roc_auc": 0.9}')
    assert not git_dirty(tmp_path, pipeline_outputs(tmp_path))
    assert git_dirty(tmp_path)
    (tmp_path / "params.yaml").write_text((tmp_path / "params.yaml").read_text() + "# edited\n")
    assert git_dirty(tmp_path, pipeline_outputs(tmp_path))


def recall_floor(params, env: str, challenger, champion) -> list[dict]:
    """A promotion hook (hooks.promotion): prod needs an F1 of at least 0.5; every environment gets a row."""
    f1 = challenger.evaluation.get("f1", 0.0)
    passed = env != "prod" or f1 >= 0.5
    return [{"name": "f1 floor for prod", "passed": passed, "detail": f"f1 {f1:.3f}"}]


def no_promotions(params, env: str, challenger, champion) -> list[dict]:
    return [{"name": "change freeze", "passed": False, "detail": f"no promotion to {env} this week"}]


def test_promotion_hook_is_a_gate(project: Path, tmp_path: Path, capsys) -> None:
    """The project's gate (hooks.promotion) is a row of the PR's gates when it passes, and refuses the
    promotion with exit 9 naming the hook and its reason when it fails; nothing is written then."""
    edit_params(project, hooks={"promotion": "tests.test_promote:recall_floor"})
    body = tmp_path / "pr.md"
    assert promote(project, "--env", "dev", "--version", "1", "--body", str(body)) == 0
    assert "f1 floor for prod (hooks.promotion)" in body.read_text()
    edit_params(project, hooks={"promotion": "tests.test_promote:no_promotions"})
    before = tree(project)
    assert promote(project, "--env", "dev", "--version", "2") == cli.EXIT_CRITERIA_NOT_MET
    err = capsys.readouterr().err
    assert "hooks.promotion" in err and "change freeze: no promotion to dev this week" in err
    assert tree(project) == before


def _version_with_card(project: Path, card: dict | None) -> str:
    """A new version of the same model and evaluation whose model folder carries `card` (None: no card)."""
    import tempfile

    from mlops_runtime.registry import configure, recorded_slices

    configure(load_params(project / "params.yaml"))  # the project's experiment, its artifacts beside the store
    client = MlflowClient()
    first = client.get_model_version(MODEL, "1")
    model = mlflow.sklearn.load_model(f"models:/{MODEL}/1")
    with mlflow.start_run() as run:
        logged = mlflow.sklearn.log_model(model, name="model", serialization_format="cloudpickle")
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "slices.json").write_text(json.dumps(recorded_slices(first.run_id)))
            mlflow.log_artifact(str(Path(folder) / "slices.json"), artifact_path="evaluation")
        if card is not None:
            with tempfile.TemporaryDirectory() as folder:
                (Path(folder) / "model_card.json").write_text(
                    json.dumps({**card, "model": {"run_id": run.info.run_id}})
                )
                client.log_model_artifacts(logged.model_id, folder)
    return str(mlflow.register_model(logged.model_uri, MODEL, tags=first.tags).version)


def test_a_version_without_a_complete_card_is_refused(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No card, or a card with a written section left empty: exit 17 naming what is missing, nothing written."""
    from mlops_runtime.card import recorded

    client = MlflowClient()
    first = client.get_model_version(MODEL, "1")
    complete = recorded(client.get_model_version_download_uri(MODEL, "1"), first.run_id)
    assert complete is not None and complete["intended_use"]
    cards = (None, {**complete, "intended_use": " "}, complete)
    without, unwritten, written = (_version_with_card(project, c) for c in cards)
    before = tree(project)
    assert promote(project, "--env", "dev", "--version", without) == cli.EXIT_NO_MODEL_CARD
    assert f"version {without} has no model card" in capsys.readouterr().err
    assert promote(project, "--env", "dev", "--version", unwritten) == cli.EXIT_NO_MODEL_CARD
    assert "the section 'Intended use' has no text" in capsys.readouterr().err
    assert tree(project) == before
    assert promote(project, "--env", "dev", "--version", written) == 0


def test_the_pr_shows_both_cards_what_changed_and_charts(project: Path, tmp_path: Path) -> None:
    """The challenger's card beside the champion's, what changed, and Mermaid charts GitHub draws."""
    assert promote(project, "--env", "dev", "--version", "1") == 0
    git(project, "commit", "--quiet", "-am", "Promote 1 to dev")
    body = tmp_path / "pr.md"
    assert promote(project, "--env", "dev", "--version", "2", "--body", str(body)) == 0
    text = body.read_text()
    assert "Model card of the challenger v2" in text and "Model card of the champion v1" in text
    assert "What changed from the card of champion v1" in text
    assert "## Intended use" in text and "### Calibration" in text and "### Drift reference" in text
    charts = text.split("```mermaid")[1:]
    assert len(charts) >= 2 and all("xychart-beta" in c for c in charts)
    assert any("by region" in c and "bar [" in c and "line [" in c for c in charts)
    assert any("ROC" in c for c in charts)
