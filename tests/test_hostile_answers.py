"""Hostile answers: free text reads back as given in every format, runs nothing, and one-line answers stay one line.

Each render groups several hostile fields; every file of the project must still parse, the text
must come back unchanged where a file shows it, and no command hidden in an answer may run when
make reads the Makefile, when the package is imported, or when the cookiecutter hook starts.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from configobj import ConfigObj
from jinja2 import FileSystemLoader
from jinja2.sandbox import SandboxedEnvironment

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the TOML parser DVC brings along
    import tomlkit as tomllib

from .conftest import REPO_ROOT, generate, project_pythonpath
from .test_cookiecutter import cookiecutter_defaults

# `{s}` becomes the sentinel's path: the file a command hidden in an answer would create.
RENDERS: dict[str, dict[str, Any]] = {
    "quotes-and-code": {
        "project_name": "Churn \"Quoted\" 'single' \\back\\slash $(shell touch {s}) `touch {s}` # not: a comment\\",
        "description": '"""; import os; os.system("touch {s}") #: {{ 7*7 }} {% raw %} $$(touch {s}) \\',
        "author_name": "O'Brien \"The \\ Team\" '''; __import__('os').system('touch {s}') #",
        "author_email": "o.brien+ml@example.co.uk",
        "serving_runtime": "deployment",
        "enable_monitoring": False,
    },
    "markup": {
        "project_name": "# *Churn* [link](javascript:alert(1)) <b>x</b> <!-- | ~~x~~ $x$ &amp; #",
        "description": "* a bullet: {{ x }} > quote ``code`` _em_ 1. one \\*",
        "author_name": "- Team & <Co> #1",
        "dvc_remote": "s3",
        "dvc_remote_url": "s3://churn-data/dvc prefix/ü",
        "mlflow_tracking_uri": "https://mlflow.example.com:8443/path?x=1&y=[2]",
        "python_version": "3.13",
    },
    "yaml-indicators": {
        "project_name": "{{ project }}",
        "description": "&anchor *alias !tag %directive @at `tick | pipe > fold ? key - dash [seq] {map} 'q' \"dq\" ,",
        "author_name": "1. Team: {s}",
        # Names YAML still reads as strings, written bare.
        "model_name": "1.5.3",
        "k8s_namespace": "2024-team",
        "package_name": "churn_pkg",
        "mlflow_tracking_uri": "postgresql+psycopg2://mlflow@db.example.com:5432/mlflow?sslmode=require&a=b",
    },
    "unicode-2000": {
        "project_name": ("Prévision du churn 😀 客户流失 مرحبا — “q” " * 60)[:2000],
        "description": ("Ünïcödé 🚀 façade ‘single’ … 𝔘𝔫𝔦 " * 80)[:2000],
        "author_name": "Zoë Ñúñez 🚀 客",
        "model_name": "v2.0",
    },
}
FREE_TEXT = ("project_name", "description", "author_name")


def hostile(answers: dict[str, Any], sentinel: Path) -> dict[str, Any]:
    return {k: v.replace("{s}", str(sentinel)) if isinstance(v, str) else v for k, v in answers.items()}


@pytest.fixture(scope="module", params=list(RENDERS), ids=list(RENDERS))
def rendered(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, Path]:
    base = tmp_path_factory.mktemp(request.param)
    sentinel = base / "SENTINEL"
    answers = hostile(RENDERS[request.param], sentinel)
    if answers.get("dvc_remote", "local") == "local":
        answers["dvc_remote_url"] = str(base / "remote dir é")
    root = generate(base / "project", **answers)
    assert not sentinel.exists(), "rendering ran a command"
    return root, answers, sentinel


def package(root: Path) -> str:
    return next(p.name for p in (root / "src").iterdir() if (p / "__init__.py").exists())


def test_every_file_parses(rendered: tuple[Path, dict, Path]) -> None:
    """YAML, TOML, JSON and Python files parse; make reads the Makefile; ruff passes on the package docstring."""
    root, _, sentinel = rendered
    for path in root.rglob("*"):
        if not path.is_file() or ".git" in path.parts:
            continue
        text = path.read_text(encoding="utf-8") if path.suffix in {".yaml", ".yml", ".toml", ".py", ".json"} else ""
        if path.suffix in {".yaml", ".yml"}:
            list(yaml.safe_load_all(text))
        elif path.suffix == ".toml":
            tomllib.loads(text)
        elif path.suffix == ".json":
            json.loads(text)
        elif path.suffix == ".py":
            ast.parse(text, filename=str(path))
    done = subprocess.run(["make", "-n", "-p", "-f", "Makefile", "help"], cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    # Where free text lands in Python; the project's lint must leave it alone.
    init = f"src/{package(root)}/__init__.py"
    for args in (["check", "--no-cache", init], ["format", "--check", "--no-cache", init]):
        done = subprocess.run([sys.executable, "-m", "ruff", *args], cwd=root, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    assert not sentinel.exists(), "make or ruff ran a command from an answer"


def test_nothing_runs(rendered: tuple[Path, dict, Path]) -> None:
    """`make help` and importing the package (where the description lands) run no command from an answer."""
    root, answers, sentinel = rendered
    done = subprocess.run(["make", "help"], cwd=root, capture_output=True, text=True)
    assert done.returncode == 0 and "make all" in done.stdout, done.stderr
    env = {**os.environ, "PYTHONPATH": project_pythonpath(root)}
    script = f"import json, {package(root)} as p; print(json.dumps(p.__doc__))"
    done = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    name, description = answers["project_name"].strip(), answers["description"].strip()
    assert json.loads(done.stdout) == f"{name}: {description}"
    assert not sentinel.exists(), "make help or the package import ran a command from an answer"


def test_text_reads_back_unchanged(rendered: tuple[Path, dict, Path]) -> None:
    """pyproject.toml, the AppProject, params.yaml, the pins, .dvc/config and the answers file give the answers back."""
    root, answers, _ = rendered
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["description"] == answers["description"]
    assert project["authors"] == [
        {"name": answers["author_name"], "email": answers.get("author_email", "ml-team@example.com")}
    ]
    appproject = yaml.safe_load((root / "deploy/argocd/appproject.yaml").read_text(encoding="utf-8"))
    assert appproject["spec"]["description"] == answers["description"]
    recorded = yaml.safe_load((root / ".copier-answers.yml").read_text(encoding="utf-8"))
    assert {k: recorded[k] for k in answers} == answers

    params = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))
    assert params["register"]["model_name"] == answers.get("model_name", recorded["project_slug"])
    assert params["argo"]["namespace"] == answers.get("k8s_namespace", recorded["project_slug"])
    assert params["mlflow"]["tracking_uri"] == answers.get("mlflow_tracking_uri", "sqlite:///mlflow.db")
    for env in ("dev", "staging", "prod"):
        pin = yaml.safe_load((root / f"deploy/overlays/{env}/model.yaml").read_text(encoding="utf-8"))
        assert pin["spec"]["model"] == params["register"]["model_name"]

    # Read as DVC reads it: one remote, the URL whole.
    config = ConfigObj(str(root / ".dvc/config")).dict()
    assert [key for key in config if key.startswith("remote")] == ['remote "storage"']
    assert config['remote "storage"']["url"] == answers["dvc_remote_url"]


def test_markdown_shows_the_text(rendered: tuple[Path, dict, Path]) -> None:
    """The READMEs' titles and the description paragraph render as plain text equal to the answers."""
    markdown_it = pytest.importorskip("markdown_it")
    root, answers, _ = rendered

    def plain(block: str, kind: str) -> str:
        tokens = markdown_it.MarkdownIt("commonmark").parse(block)
        assert [t.type for t in tokens] == [f"{kind}_open", "inline", f"{kind}_close"], block
        children = tokens[1].children or []
        assert {c.type for c in children} <= {"text"}, (block, [c.type for c in children])
        return "".join(c.content for c in children)

    title, paragraph = (root / "README.md").read_text(encoding="utf-8").split("\n\n")[:2]
    assert plain(title, "heading") == answers["project_name"].strip()
    assert plain(paragraph, "paragraph") == answers["description"].strip()
    deploy_title = (root / "deploy/README.md").read_text(encoding="utf-8").split("\n\n")[0]
    assert plain(deploy_title, "heading") == f"Deploying {answers['project_name'].strip()}"


def test_cookiecutter_hook_passes_the_answers_whole(tmp_path: Path) -> None:
    """The cookiecutter front door's hook, rendered with hostile answers, is valid Python holding them unchanged."""
    from cookiecutter.environment import StrictEnvironment

    sentinel = tmp_path / "SENTINEL"
    answers = {k: v for render in RENDERS.values() for k, v in hostile(render, sentinel).items() if k in FREE_TEXT}
    context = {"cookiecutter": {**answers, "_template": str(REPO_ROOT)}}
    source = (REPO_ROOT / "hooks/post_gen_project.py").read_text(encoding="utf-8")
    hook = StrictEnvironment(context=context).from_string(source).render(**context)
    tree = ast.parse(hook)
    literal = next(
        node.value.args[0].value
        for node in tree.body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "CONTEXT"
    )
    assert {k: v for k, v in json.loads(literal).items() if k in FREE_TEXT} == answers
    assert not sentinel.exists()


# Refusals ---------------------------------------------------------------------------------------
# `validate` renders a validator as copier does, in milliseconds, so every case is checked; a few
# cases also go through `copier copy` end to end.

QUESTIONS = {
    name: spec for name, spec in yaml.safe_load((REPO_ROOT / "copier.yml").read_text()).items() if name[0] != "_"
}
# A valid value of every one-line question.
VALID = {
    "project_name": "Churn",
    "project_slug": "churn",
    "package_name": "churn",
    "description": "Predict churn.",
    "author_name": "ML Team",
    "author_email": "ml@example.com",
    "github_owner": "acme",
    "model_name": "churn",
    "dvc_remote_url": "/srv/dvc-remote",
    "mlflow_tracking_uri": "http://mlflow:5000",
    "container_registry": "ghcr.io/acme",
    "k8s_namespace": "churn",
    "runtime_source": "https://github.com/acme/mlops-template.git",
}
# validate(question, value, **other_answers): the refusal text, or "" for an accepted value.
Validate = Callable[..., str]
CHOICES = {"python_version": "3.11", "dvc_remote": "local", "serving_runtime": "kserve", "enable_monitoring": True}


@pytest.fixture(scope="module")
def copier_env() -> SandboxedEnvironment:
    """Jinja as copier renders questions: sandboxed, over the template root, with jinja2-ansible-filters' filters."""
    return SandboxedEnvironment(
        loader=FileSystemLoader(str(REPO_ROOT)), extensions=["jinja2_ansible_filters.AnsibleCoreFiltersExtension"]
    )


@pytest.fixture(scope="module")
def validate(copier_env: SandboxedEnvironment) -> Validate:
    def check(question: str, value: str, **others: Any) -> str:
        answers = {**VALID, **CHOICES, **others, question: value}
        return copier_env.from_string(QUESTIONS[question].get("validator", "")).render(answers).strip()

    return check


def test_every_one_line_question_is_checked(validate: Validate) -> None:
    """Every text question has a validator, and every valid value passes it."""
    asked = {name: spec for name, spec in QUESTIONS.items() if spec.get("when") is not False}
    assert {name for name, spec in asked.items() if "choices" not in spec and spec["type"] == "str"} == set(VALID)
    for question, value in VALID.items():
        assert validate(question, value) == "", question


# A trailing newline for every question (Python's `$` lets one through), more breaks for free text.
LINE_BREAKS = {f"{q}-trailing-newline": (q, v + "\n") for q, v in VALID.items()} | {
    f"{q}-{kind}": (q, value)
    for q in FREE_TEXT
    for kind, value in {
        "newline-make": f"{VALID[q]}\n$(shell touch x)",
        "carriage-return": f"{VALID[q]}\r",
        "tab": "a\tb",
        "nul": "a\x00b",
        "line-separator": "a\u2028b",
        "next-line": "a\x85b",
        "bidi-override": "a\u202eb",
        "byte-order-mark": "\ufeffa",
    }.items()
}


@pytest.mark.parametrize(("question", "value"), LINE_BREAKS.values(), ids=list(LINE_BREAKS))
def test_one_line_answers_refuse_line_breaks(validate: Validate, question: str, value: str) -> None:
    """A trailing newline, a line break, a tab, a separator or an invisible control: refused, naming the value."""
    message = validate(question, value)
    assert message.startswith(f"{question} {json.dumps(value)} holds a line break"), message
    assert message.endswith("write it on one line without them.") and "\n" not in message


def test_refusal_stops_copier_before_writing(tmp_path: Path) -> None:
    """End to end: copier stops on a line break with the validator's text and leaves nothing behind."""
    dst = tmp_path / "project"
    with pytest.raises(ValueError, match=r'description "Churn\\n\$\(shell touch x\)" holds a line break'):
        generate(dst, description="Churn\n$(shell touch x)")
    assert not dst.exists()


@pytest.mark.parametrize(
    "value",
    [
        "Churn \"Quoted\" 'single' \\ # : {{ x }} {% raw %} `touch x` $(shell touch x)",
        "Prévision 😀 客户流失 مرحبا 𝔘𝔫𝔦",
        "x" * 2000,
        "*leading star",
    ],
    ids=["punctuation", "unicode", "2000-chars", "leading-star"],
)
@pytest.mark.parametrize("question", FREE_TEXT)
def test_free_text_accepts_any_one_line(validate: Validate, question: str, value: str) -> None:
    """Quotes, backslashes, '#', ': ', '{{', unicode and 2,000 characters are valid free text."""
    assert validate(question, value) == ""


@pytest.mark.parametrize(
    "name", ["2024 Forecast", "Прогноз оттока", "Churn " * 400], ids=["leading-digits", "no-ascii", "2000-chars"]
)
def test_derived_slug_is_valid_and_the_same_through_cookiecutter(
    copier_env: SandboxedEnvironment, validate: Validate, name: str
) -> None:
    """A name the slug cannot start with, without ASCII letters, or long still gives a valid default slug."""
    slug = copier_env.from_string(QUESTIONS["project_slug"]["default"]).render(project_name=name)
    assert slug and validate("project_slug", slug) == ""
    assert cookiecutter_defaults(project_name=name)["project_slug"] == slug


# Every distribution or module these names stand for is in a generated project's environment.
SHADOWING = ["packaging", "pip", "setuptools", "ruamel", "pkg_resources", "_pytest", "tomli", "urllib3", "win32api"]


@pytest.mark.parametrize("name", SHADOWING)
def test_package_names_of_the_environment_are_refused(validate: Validate, name: str) -> None:
    """Modules a generated project's environment holds (dependencies of dependencies, installers) are refused."""
    assert validate("package_name", name).startswith(f"package_name '{name}' is a Python keyword or shadows")


def test_reserved_names_script_agrees_with_the_include() -> None:
    """scripts/reserved_names.py --check (here: the installers and project folders it always adds) passes."""
    done = subprocess.run(
        [sys.executable, "scripts/reserved_names.py", "--check"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_shadowing_name_stops_copier(tmp_path: Path) -> None:
    """End to end: copier refuses packaging, which would break every import of it in the project."""
    with pytest.raises(ValueError, match="package_name 'packaging' is a Python keyword or shadows"):
        generate(tmp_path / "project", package_name="packaging")


CREDENTIALS = {
    "tracking-user-password": (
        "mlflow_tracking_uri",
        "https://alice:s3cret@mlflow.example.com",
        "MLFLOW_TRACKING_PASSWORD",
    ),
    "tracking-token-user": ("mlflow_tracking_uri", "https://s3cret@mlflow.example.com:5000", "MLFLOW_TRACKING_TOKEN"),
    "tracking-token-query": ("mlflow_tracking_uri", "http://mlflow:5000/?token=s3cret", "MLFLOW_TRACKING_TOKEN"),
    "database-password": ("mlflow_tracking_uri", "postgresql://mlflow:s3cret@db/mlflow", "MLFLOW_TRACKING_URI"),
    "database-password-query": ("mlflow_tracking_uri", "mysql://db/mlflow?password=s3cret", "MLFLOW_TRACKING_URI"),
    "s3-keys": ("dvc_remote_url", "s3://AKIAEXAMPLE:s3cret@bucket/dvc", "AWS_SECRET_ACCESS_KEY"),
    "s3-presigned": ("dvc_remote_url", "s3://bucket/dvc?X-Amz-Signature=s3cret", "AWS_SECRET_ACCESS_KEY"),
    "registry-login": ("container_registry", "robot:s3cret@ghcr.io/acme", "REGISTRY_PASSWORD"),
}


@pytest.mark.parametrize(("question", "value", "variable"), CREDENTIALS.values(), ids=list(CREDENTIALS))
def test_credentials_in_urls_are_refused(validate: Validate, question: str, value: str, variable: str) -> None:
    """A URL carrying a password or token is refused; the message points at the variable to use and hides the secret."""
    message = validate(question, value, dvc_remote="s3" if value.startswith("s3://") else "local")
    assert message.startswith(f"{question} '") and " carries " in message, message
    assert variable in message and "s3cret" not in message


def test_credentials_stop_copier(tmp_path: Path) -> None:
    """End to end: a tracking URI with user:password@ is refused before anything is written."""
    dst = tmp_path / "project"
    with pytest.raises(ValueError, match="MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"):
        generate(dst, mlflow_tracking_uri="https://alice:s3cret@mlflow.example.com")
    assert not dst.exists()


@pytest.mark.parametrize(
    "uri", ["postgresql://mlflow@db.example.com/mlflow", "databricks://profile:prefix", "sqlite:///a@b.db"]
)
def test_urls_without_secrets_are_accepted(validate: Validate, uri: str) -> None:
    """A user name alone, a Databricks profile or an '@' in a path is no secret."""
    assert validate("mlflow_tracking_uri", uri) == ""


@pytest.mark.parametrize("url", ["/srv/dvc#remote", "/srv/a,b", "/srv/%(x)s", "/srv/dvc ", '/srv/"q"', "/srv/`x`"])
def test_dvc_remote_url_refuses_what_dvc_config_misreads(validate: Validate, url: str) -> None:
    """'#' would start a comment, ',' a list, '%(' an interpolation, and trailing spaces vanish in .dvc/config."""
    assert "which .dvc/config would read" in validate("dvc_remote_url", url)


YAML_TYPED = ["yes", "Off", "y", "null", "true", "123", "1.5", "1e5", "0x1f", "0o17", "1_000", "2024-01-01"]


@pytest.mark.parametrize("value", YAML_TYPED)
@pytest.mark.parametrize("question", ["model_name", "k8s_namespace"])
def test_names_yaml_reads_as_another_type_are_refused(validate: Validate, question: str, value: str) -> None:
    """model_name and k8s_namespace stand unquoted in params.yaml and the pins: numbers, booleans, dates are refused."""
    assert validate(question, value).startswith(f"{question} '{value}' reads as a number, a boolean, a date or null")


@pytest.mark.parametrize("slug", ["yes", "no", "on", "off", "true", "false", "null", "y", "n"])
def test_slug_that_yaml_reads_as_a_boolean_is_refused(validate: Validate, slug: str) -> None:
    """The slug names Kubernetes objects unquoted: YAML would read these as booleans or null."""
    assert validate("project_slug", slug).startswith(f"project_slug '{slug}' reads as a boolean or null in YAML")


@pytest.mark.parametrize("email", ['a"b@example.com', "a\\b@example.com", "a b@example.com", "a@b@example.com"])
def test_email_refuses_what_metadata_cannot_hold(validate: Validate, email: str) -> None:
    """Quotes, backslashes, spaces and a second '@' are refused in author_email."""
    assert "is not a valid email address" in validate("author_email", email)
