"""Rendering: every meaningful answer combination gives the right, clean, lintable files."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import jinja2
import pytest
import yaml

from .conftest import COMBINATIONS, REPO_ROOT, generate, project_files

TEMPLATE = REPO_ROOT / "template"

# The project's own package: its entry point and its stages; the platform is the runtime (mlops-runtime).
PACKAGE_MODULES = [
    "__init__.py",
    "__main__.py",
    "stages/__init__.py",
    "stages/evaluate.py",
    "stages/featurize.py",
    "stages/ingest.py",
    "stages/register.py",
    "stages/summary.py",
    "stages/train.py",
    "stages/validate.py",
]
ENVIRONMENTS = ["dev", "staging", "prod"]
SERVING_FILES = {
    "kserve": ["servingruntime.yaml", "inferenceservice.yaml"],
    "deployment": ["deployment.yaml", "service.yaml", "hpa.yaml", "pdb.yaml"],
}
MONITORING_FILES = [
    "dashboard.json", "drift-cronjob.yaml", "github-externalsecret.yaml", "kustomization.yaml", "podmonitor.yaml",
    "prometheusrule.yaml",
]  # fmt: skip

SCHEMAS = {
    "always": [
        "argoproj.io/workflowtemplate_v1alpha1.json.gz", "argoproj.io/appproject_v1alpha1.json.gz",
        "argoproj.io/applicationset_v1alpha1.json.gz", "external-secrets.io/externalsecret_v1.json.gz",
        "bitnami.com/sealedsecret_v1alpha1.json.gz",
    ],
    "kserve": [
        "serving.kserve.io/inferenceservice_v1beta1.json.gz", "serving.kserve.io/servingruntime_v1alpha1.json.gz",
    ],
    "monitoring": [
        "monitoring.coreos.com/podmonitor_v1.json.gz", "monitoring.coreos.com/prometheusrule_v1.json.gz",
    ],
}  # fmt: skip


def deploy_files(serving_runtime: str, enable_monitoring: bool) -> set[str]:
    """deploy/: the base for the runtime, the pin component, overlays with pins, Argo CD, and monitoring if chosen."""
    files = {
        "deploy/README.md",
        *(f"deploy/base/{name}" for name in ["kustomization.yaml", "serviceaccount.yaml", "externalsecret.yaml",
                                             "networkpolicy.yaml", *SERVING_FILES[serving_runtime]]),
        "deploy/components/pinned-model/kustomization.yaml",
        *(f"deploy/components/pod-security/{name}" for name in ["kustomization.yaml", "pod-security.yaml"]),
        *(f"deploy/argocd/{name}" for name in ["kustomization.yaml", "appproject.yaml", "applicationset.yaml"]),
        *(f"deploy/overlays/{env}/{name}" for env in ENVIRONMENTS for name in ["kustomization.yaml", "model.yaml"]),
        # The custom-resource schemas of what the project renders (see test_schemas.py).
        *(f"deploy/schemas/{name}" for name in ["catalog.json", "LICENSE", *SCHEMAS["always"]]),
    }  # fmt: skip
    if serving_runtime == "kserve":
        files |= {f"deploy/schemas/{name}" for name in SCHEMAS["kserve"]}
    if enable_monitoring:
        files.add("tests/test_drift_job.py")
        files |= {f"deploy/components/monitoring/{name}" for name in MONITORING_FILES}
        files |= {f"deploy/overlays/{env}/thresholds.yaml" for env in ENVIRONMENTS}
        files |= {f"deploy/schemas/{name}" for name in SCHEMAS["monitoring"]}
    return files


def expected_files(package: str, serving_runtime: str = "kserve", enable_monitoring: bool = True) -> set[str]:
    """The exact file set of a rendered project (before the copy task adds data and git)."""
    return {
        ".copier-answers.yml", ".dockerignore", ".dvc/.gitignore", ".dvc/config", ".dvcignore", ".gitignore",
        ".github/workflows/template-update.yml", ".github/workflows/ci.yml", ".github/workflows/train.yml",
        ".github/workflows/promote.yml", ".github/workflows/promotion-pr.yml", ".github/workflows/sync-aliases.yml",
        ".github/workflows/drift-response.yml",
        ".github/CODEOWNERS", ".github/pull_request_template.md", "docs/pipelines.md", "docs/promotion.md",
        "docs/hooks.md",
        "mkdocs.yml", "docs/hooks.py",
        ".pre-commit-config.yaml", "Dockerfile", "Makefile", "README.md", "dvc.yaml", "params.yaml", "pyproject.toml",
        "pipelines/training.py",
        # The tests of the project's own code and files; the runtime's are in the template repository.
        "tests/__init__.py", "tests/conftest.py", "tests/test_gates.py", "tests/test_pipeline.py",
        "tests/test_dvc_truth.py", "tests/test_fairness.py", "tests/test_feature_contract.py", "model_card.md",
        "tests/test_runtime_release.py",
        # The record of the last `make bench-monitor` run (the benchmarks are the runtime's: mlops_runtime.bench).
        "bench/monitoring.json",
        *(f"src/{package}/{module}" for module in PACKAGE_MODULES),
        *deploy_files(serving_runtime, enable_monitoring),
    }  # fmt: skip


@pytest.fixture(scope="module", params=list(COMBINATIONS), ids=list(COMBINATIONS))
def rendered(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    answers = COMBINATIONS[request.param]
    dst = tmp_path_factory.mktemp(request.param) / "project"
    generate(dst, **answers)
    recorded = yaml.safe_load((dst / ".copier-answers.yml").read_text())
    return dst, recorded


def test_exact_file_set(rendered: tuple[Path, dict]) -> None:
    """The project holds exactly the expected files, under the chosen package name."""
    dst, answers = rendered
    expected = expected_files(answers["package_name"], answers["serving_runtime"], answers["enable_monitoring"])
    assert project_files(dst) == expected


def rendered_from_jinja(answers: dict) -> set[str]:
    """Output paths of the files copier renders (their sources end in .jinja); others are copied as they are."""
    context = {**answers, "_copier_conf": {"answers_file": ".copier-answers.yml"}}
    paths = set()
    for source in TEMPLATE.rglob("*.jinja"):
        path = jinja2.Template(source.relative_to(TEMPLATE).as_posix().removesuffix(".jinja")).render(context)
        if not path.endswith("/") and "//" not in path:  # an empty name: copier skips it
            paths.add(path)
    return paths


# Argo CD's ApplicationSet templates are Go templates ({{ .env }}, {{- if ... }}); only that file may hold them.
GO_TEMPLATE_FILES = {"deploy/argocd/applicationset.yaml"}
GO_TEMPLATE = r"\{\{-? (\.|if |end )"
# Argo's own placeholders, quoted in the project's docs on workflows.
ARGO_PLACEHOLDER_FILES = {"docs/pipelines.md"}
ARGO_PLACEHOLDER = r"\{\{=?(jsonpath\(|tasks\.|workflow\.|inputs\.)"


def test_no_unrendered_jinja(rendered: tuple[Path, dict]) -> None:
    """No Jinja delimiters survive rendering (DVC's ${...}, Go templates of Argo CD, Argo placeholders: not Jinja)."""
    dst, answers = rendered
    leftovers = [
        f"{path}: {match.group(0)}"
        for path in sorted(rendered_from_jinja(answers))
        for match in re.finditer(r"\{\{|\{%|\{#", (dst / path).read_text(encoding="utf-8"))
        if not (path in GO_TEMPLATE_FILES and re.match(GO_TEMPLATE, (dst / path).read_text()[match.start() :]))
        and not (
            path in ARGO_PLACEHOLDER_FILES and re.match(ARGO_PLACEHOLDER, (dst / path).read_text()[match.start() :])
        )
    ]
    assert leftovers == []


def test_python_compiles_and_ruff_passes(rendered: tuple[Path, dict]) -> None:
    """Every Python file compiles; ruff lint and format pass with the project's own config."""
    dst, _ = rendered
    for path in dst.rglob("*.py"):
        compile(path.read_text(encoding="utf-8"), str(path), "exec")
    for args in (["check"], ["format", "--check"]):
        done = subprocess.run([sys.executable, "-m", "ruff", *args, "."], cwd=dst, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr


def test_answers_reach_the_files(rendered: tuple[Path, dict]) -> None:
    """Names, remote and tracking URI come from the answers, written once each."""
    dst, answers = rendered
    params = yaml.safe_load((dst / "params.yaml").read_text())
    assert params["register"]["model_name"] == answers["model_name"]
    assert params["mlflow"]["tracking_uri"] == answers["mlflow_tracking_uri"]
    assert f"url = {answers['dvc_remote_url']}" in (dst / ".dvc/config").read_text()
    pyproject = (dst / "pyproject.toml").read_text()
    assert f'requires-python = ">={answers["python_version"]}"' in pyproject
    assert ('"dvc-s3' in pyproject) == (answers["dvc_remote"] == "s3")
    assert f"python -m {answers['package_name']} ingest" in (dst / "dvc.yaml").read_text()


def test_dvc_stages_follow_the_pipeline_order(rendered: tuple[Path, dict]) -> None:
    """dvc.yaml has the five stages in lifecycle order, each one CLI command, paths from params.yaml."""
    dst, answers = rendered
    stages = yaml.safe_load((dst / "dvc.yaml").read_text())["stages"]
    assert list(stages) == ["ingest", "validate", "featurize", "train", "evaluate"]
    for name, stage in stages.items():
        assert stage["cmd"] == f"python -m {answers['package_name']} {name}"
        outs = [next(iter(o)) if isinstance(o, dict) else o for o in stage.get("outs", [])]
        assert all(out.startswith("${paths.") for out in outs), outs
