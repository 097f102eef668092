"""One source per fact: the container user, the serving port, the lineage names and the name slug are each
written once, and every other file derives them.

The numbers are copier computed values (`when: false` in copier.yml). Rendering with other numbers proves
that no file keeps a copy of the defaults, and names the only files the new numbers reach.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from .conftest import COMBINATIONS, REPO_ROOT, generate

RUNTIME_PACKAGE = REPO_ROOT / "runtime" / "src" / "mlops_runtime"

COPIER = yaml.safe_load((REPO_ROOT / "copier.yml").read_text())
# Not the defaults, and nowhere else in a project: each occurrence comes from the computed value.
OTHER_VALUES = {"container_uid": 23456, "serving_port": 9191}
# Both serving runtimes, with and without monitoring.
PROJECTS = [
    "defaults",
    "local-kserve-nomonitoring-py310",
    "custom-names-deployment",
    "s3-deployment-nomonitoring-py312",
]


def number(value: int) -> re.Pattern[str]:
    return re.compile(rf"(?<![0-9]){value}(?![0-9])")


def text_files(root: Path) -> dict[str, str]:
    """Every text file of a rendered project (the vendored schemas are gzipped), by POSIX path."""
    found = {}
    for path in root.rglob("*"):
        if path.is_file() and ".git" not in path.parts and path.suffix != ".gz":
            found[path.relative_to(root).as_posix()] = path.read_text(encoding="utf-8")
    return found


def holding(files: dict[str, str], pattern: re.Pattern[str]) -> dict[str, int]:
    return {path: len(pattern.findall(text)) for path, text in files.items() if pattern.search(text)}


@pytest.fixture(scope="module", params=PROJECTS, ids=PROJECTS)
def project(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    answers = {**COMBINATIONS[request.param], **OTHER_VALUES}
    dst = generate(tmp_path_factory.mktemp(request.param) / "project", **answers)
    recorded = yaml.safe_load((dst / ".copier-answers.yml").read_text())
    return dst, recorded


def test_numbers_are_computed_values_never_asked() -> None:
    """copier.yml holds each number once, as a question copier never asks nor records (`when: false`)."""
    for name, default in (("container_uid", 10001), ("serving_port", 8080)):
        assert COPIER[name]["when"] is False and COPIER[name]["default"] == default
        assert len(number(default).findall((REPO_ROOT / "copier.yml").read_text())) == 1, name


def test_computed_values_are_not_recorded_answers(project: tuple[Path, dict[str, Any]]) -> None:
    """An update renders them from the template again: the answers file does not carry them."""
    _, answers = project
    assert not set(OTHER_VALUES) & set(answers)


def test_container_user_is_written_in_the_image_and_the_pod_security_context_only(
    project: tuple[Path, dict[str, Any]],
) -> None:
    """The UID reaches the Dockerfile (one ARG) and pod-security.yaml (user, group, fsGroup), and no other file."""
    root, _ = project
    files = text_files(root)
    assert holding(files, number(COPIER["container_uid"]["default"])) == {}
    assert holding(files, number(OTHER_VALUES["container_uid"])) == {
        "Dockerfile": 1,
        "deploy/components/pod-security/pod-security.yaml": 3,
    }
    assert f"ARG APP_UID={OTHER_VALUES['container_uid']}\n" in files["Dockerfile"]
    # No other manifest sets a user or a seccomp profile of its own: pod-security.yaml is the one context.
    for path, text in files.items():
        if path.startswith("deploy/") and path.endswith(".yaml") and not path.endswith("/pod-security.yaml"):
            assert not re.search(r"runAs(User|Group|NonRoot)|fsGroup|seccompProfile", text), path


def port_files(answers: dict[str, Any]) -> set[str]:
    """Where the serving port is written: params.yaml for the Python code, the rendered manifests, the docs."""
    files = {"params.yaml", "Dockerfile", "README.md", "deploy/README.md", "deploy/base/networkpolicy.yaml"}
    if answers["serving_runtime"] == "kserve":
        files |= {"deploy/base/servingruntime.yaml", "deploy/base/inferenceservice.yaml"}
    else:
        files |= {"deploy/base/deployment.yaml"}
    if answers["enable_monitoring"]:
        files |= {"deploy/components/monitoring/podmonitor.yaml"}
    return files


def test_serving_port_reaches_params_manifests_and_docs_only(project: tuple[Path, dict[str, Any]]) -> None:
    """No Python file holds the port: the server reads serve.port of params.yaml, where the port is written once."""
    root, answers = project
    files = text_files(root)
    assert holding(files, number(COPIER["serving_port"]["default"])) == {}
    assert set(holding(files, number(OTHER_VALUES["serving_port"]))) == port_files(answers)
    assert yaml.safe_load(files["params.yaml"])["serve"]["port"] == OTHER_VALUES["serving_port"]
    assert holding(files, number(OTHER_VALUES["serving_port"]))["params.yaml"] == 1


def load_lineage() -> ModuleType:
    """The runtime's lineage.py as a module of its own (it imports only the standard library and yaml)."""
    spec = importlib.util.spec_from_file_location("runtime_lineage", RUNTIME_PACKAGE / "lineage.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pins_and_the_pin_component_list_exactly_the_lineage(project: tuple[Path, dict[str, Any]]) -> None:
    """Each overlay's model.yaml and components/pinned-model carry the annotations of lineage.LINEAGE, in order."""
    root, answers = project
    lineage = load_lineage()
    expected = [lineage.ANNOTATION_PREFIX + name for name in lineage.LINEAGE.values()]
    assert expected == [lineage.annotation(name) for name in lineage.LINEAGE]
    for pin in sorted(root.glob("deploy/overlays/*/model.yaml")):
        annotations = yaml.safe_load(pin.read_text())["metadata"]["annotations"]
        assert [key for key in annotations if key.startswith(lineage.ANNOTATION_PREFIX)] == expected, pin
    component = yaml.safe_load((root / "deploy/components/pinned-model/kustomization.yaml").read_text())
    copied = [
        match[1]
        for replacement in component["replacements"]
        if (match := re.fullmatch(r"metadata\.annotations\.\[(.+)\]", replacement["source"]["fieldPath"]))
    ]
    assert copied == expected


def test_lineage_names_are_written_in_lineage_py_only(project: tuple[Path, dict[str, Any]]) -> None:
    """The code of the project and of the runtime (tests aside, which pin the stored spellings) names lineage
    through the runtime's lineage.py."""
    root, answers = project
    lineage = load_lineage()
    # Both spellings; RUN_ID is also a key of the train stage's model_info.json, unrelated to pins.
    names = {*lineage.LINEAGE.values(), *(name for name in lineage.LINEAGE if name != lineage.RUN_ID)}
    alternatives = "|".join(map(re.escape, names))
    quoted = re.compile(rf"""["'](model\.mlops/)?({alternatives})["']""")
    sources = [*root.glob("src/**/*.py"), *root.glob("pipelines/*.py"), *root.glob("bench/*.py")]
    sources += RUNTIME_PACKAGE.rglob("*.py")
    lineage_py = RUNTIME_PACKAGE / "lineage.py"
    found = {
        f"{path}: {match[0]}"
        for path in sources
        if path != lineage_py
        for match in quoted.finditer(path.read_text(encoding="utf-8"))
    }
    assert found == set()
    # The update migration reads the template's own lineage.py instead of a copy.
    hook = (REPO_ROOT / "hooks/migrate_pin_image.py").read_text()
    assert not quoted.search(hook) and "COMMIT_TAG" in hook
    # And the check can fail: a copy is found.
    assert quoted.search('commit = lineage["git-commit"]')


def test_name_slug_is_one_function(project: tuple[Path, dict[str, Any]]) -> None:
    """Argo task and artifact names come from one slug function (the runtime's argo/dag.py)."""
    root, answers = project
    sources = {
        **{p: root for p in root.glob("src/**/*.py")},
        **{p: RUNTIME_PACKAGE for p in RUNTIME_PACKAGE.rglob("*.py")},
    }
    holders = {str(path.relative_to(base)) for path, base in sources.items() if "[^a-z0-9]+" in path.read_text()}
    assert holders == {"argo/dag.py"}
