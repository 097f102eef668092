"""Bad answers stop copier before anything is written, with a message naming the question."""

from __future__ import annotations

import keyword
import re
import sys
from pathlib import Path

import pytest
from jinja2 import Environment, FileSystemLoader

from .conftest import REPO_ROOT, generate

BAD_ANSWERS = {
    "project_name": "   ",
    "project_slug": "Customer_Churn",
    "package_name": "2churn",
    "author_email": "not-an-email",
    "github_owner": "bad owner!",
    "model_name": "-model",
    "dvc_remote_url": "relative/remote",
    "mlflow_tracking_uri": "ftp://mlflow",
    "container_registry": "GHCR.IO/Org",
    "k8s_namespace": "Prod_NS",
}


@pytest.mark.parametrize(("question", "value"), BAD_ANSWERS.items(), ids=list(BAD_ANSWERS))
def test_bad_answer_names_the_question(question: str, value: str, tmp_path: Path) -> None:
    """Each validator rejects a wrong value, names the question, and leaves no project behind."""
    dst = tmp_path / "project"
    with pytest.raises(ValueError, match=question) as failure:
        generate(dst, **{question: value})
    assert "use" in str(failure.value) or "write" in str(failure.value) or "give" in str(failure.value)
    assert not dst.exists()


@pytest.mark.parametrize("name", ["json", "class", "sklearn", "mlflow", "test", "pandas"])
def test_package_name_may_not_shadow(name: str, tmp_path: Path) -> None:
    """Keywords, standard-library and dependency modules are refused as package names."""
    with pytest.raises(ValueError, match=f"package_name '{name}' is a Python keyword or shadows"):
        generate(tmp_path / "project", package_name=name)


def test_namespace_leaves_room_for_the_environment_suffix(tmp_path: Path) -> None:
    """k8s_namespace plus '-staging' must still be a valid namespace (63 characters)."""
    with pytest.raises(ValueError, match="use 1-55 lowercase letters"):
        generate(tmp_path / "project", k8s_namespace="n" * 56)


def test_slug_longer_than_40_is_refused(tmp_path: Path) -> None:
    """project_slug leaves room for suffixes Kubernetes controllers add to names."""
    with pytest.raises(ValueError, match="project_slug"):
        generate(tmp_path / "project", project_slug="a" * 41)


def test_s3_remote_needs_an_s3_url(tmp_path: Path) -> None:
    """dvc_remote=s3 with a plain path is refused with the fix."""
    with pytest.raises(ValueError, match="dvc_remote_url '/data/remote' is not an S3 URL"):
        generate(tmp_path / "project", dvc_remote="s3", dvc_remote_url="/data/remote")


def test_reserved_names_cover_stdlib_and_keywords() -> None:
    """includes/reserved_names.jinja lists every keyword, standard-library module and direct dependency's module."""
    macro = "{% from 'includes/reserved_names.jinja' import reserved_package_names %}{{ reserved_package_names() }}"
    listed = set(Environment(loader=FileSystemLoader(str(REPO_ROOT))).from_string(macro).render().split())
    # The import names of the generated project's direct dependencies (all extras), and the installers.
    dependencies = {"dvc", "dvc_s3", "s3fs", "boto3", "hera", "matplotlib", "mlflow", "pandas", "pandera", "pyarrow"}
    dependencies |= {"prometheus_client", "pydantic", "yaml", "ruamel", "sklearn", "starlette", "uvicorn", "httpx2"}
    dependencies |= {"jsonschema", "kubernetes_validate", "pre_commit", "pre_commit_hooks", "pytest", "ruff"}
    dependencies |= {"tritonclient", "pip", "setuptools", "packaging"}
    expected = set(sys.stdlib_module_names) | set(sys.builtin_module_names) | set(keyword.kwlist) | dependencies
    assert {n for n in expected if re.fullmatch("[a-z_][a-z0-9_]*", n)} - listed == set()
