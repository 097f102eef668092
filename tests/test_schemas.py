"""Custom-resource schemas travel with the code: the template ships them, each project carries what it renders."""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from .conftest import REPO_ROOT, SCHEMAS, generate, project_pythonpath
from .test_deploy import PROJECTS, build

COMMIT = "7b1e26ef9deea49293714d204c1a2270aab1178f"
OTHER_COMMIT = "1" * 40


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("refresh_schemas", REPO_ROOT / "scripts/refresh_schemas.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def unpack(folder: Path, catalog: Path, paths: dict[str, Path]) -> None:
    """A local 'catalog checkout' made of the vendored schemas, decompressed."""
    for path, file in paths.items():
        (catalog / path).parent.mkdir(parents=True, exist_ok=True)
        (catalog / path).write_bytes(gzip.decompress(file.read_bytes()))


def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    package = yaml.safe_load((root / ".copier-answers.yml").read_text())["package_name"]
    env = {k: v for k, v in os.environ.items() if k != "K8S_SCHEMAS_DIR"} | {"PYTHONPATH": project_pythonpath(root)}
    return subprocess.run(
        [sys.executable, "-m", package, *args], cwd=root, capture_output=True, text=True, env=env, timeout=300
    )


def test_template_ships_compact_schemas_from_a_recorded_commit() -> None:
    """Every shipped schema is a JSON schema, minified and gzipped reproducibly; the catalog commit is recorded."""
    script = load_script()
    schemas = script.load_module()
    record = json.loads((SCHEMAS / "catalog.json").read_text())
    assert record == {"catalog": "https://github.com/datreeio/CRDs-catalog", "commit": COMMIT}
    assert (SCHEMAS / "LICENSE").read_text().startswith("MIT License")
    shipped = script.shipped(SCHEMAS)
    assert set(shipped) == {
        "argoproj.io/applicationset_v1alpha1.json",
        "argoproj.io/appproject_v1alpha1.json",
        "argoproj.io/workflowtemplate_v1alpha1.json",
        "bitnami.com/sealedsecret_v1alpha1.json",
        "external-secrets.io/externalsecret_v1.json",
        "monitoring.coreos.com/podmonitor_v1.json",
        "monitoring.coreos.com/prometheusrule_v1.json",
        "serving.kserve.io/inferenceservice_v1beta1.json",
        "serving.kserve.io/servingruntime_v1alpha1.json",
    }
    for file in shipped.values():
        schema = schemas.load(file)
        assert "properties" in schema, file
        assert file.read_bytes() == schemas.compact(schema), f"{file} is not in the vendored form"
    assert sum(f.stat().st_size for f in shipped.values()) < 200_000


def test_template_refresh_rewrites_only_from_a_complete_catalog(tmp_path: Path) -> None:
    """The refresh reads every schema first: a catalog missing one changes nothing; a whole one replaces all."""
    script = load_script()
    schemas = script.load_module()
    folder = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, folder)
    shipped = script.shipped(folder)
    catalog = tmp_path / "catalog"
    unpack(folder, catalog, shipped)
    before = {path: file.read_bytes() for path, file in shipped.items()}

    # The same content at another commit: identical bytes, new commit recorded.
    assert schemas.refresh(folder, OTHER_COMMIT, source=str(catalog), targets=shipped) == sorted(shipped)
    assert {path: file.read_bytes() for path, file in shipped.items()} == before
    assert json.loads((folder / "catalog.json").read_text())["commit"] == OTHER_COMMIT

    (catalog / "argoproj.io/appproject_v1alpha1.json").unlink()
    changed = catalog / "argoproj.io/workflowtemplate_v1alpha1.json"
    changed.write_text(json.dumps({"type": "object", "properties": {"spec": {"type": "object"}}}))
    with pytest.raises(schemas.SchemaError, match="appproject_v1alpha1.json does not exist"):
        schemas.refresh(folder, COMMIT, source=str(catalog), targets=shipped)
    assert {path: file.read_bytes() for path, file in shipped.items()} == before
    assert json.loads((folder / "catalog.json").read_text())["commit"] == OTHER_COMMIT


@pytest.mark.parametrize("name", list(PROJECTS))
def test_project_carries_the_schemas_of_what_it_renders(name: str, tmp_path: Path) -> None:
    """deploy/schemas holds exactly one schema per custom kind the overlays, Argo CD and workflows render."""
    root = generate(tmp_path / "project", **PROJECTS[name])
    # The workflows are built from DVC's graph, which needs a git repository.
    subprocess.run(["git", "init", "--quiet"], cwd=root, check=True)
    done = cli(root, "pipeline", "render")
    assert done.returncode == 0, done.stderr
    docs = [doc for target in ("overlays/dev", "overlays/prod", "argocd") for doc in build(root, target)]
    docs += [doc for file in (root / "pipelines").glob("*.yaml") for doc in yaml.safe_load_all(file.read_text())]
    rendered = set()
    for doc in docs:
        group, _, version = doc["apiVersion"].rpartition("/")
        if "." in group and not group.endswith(".k8s.io"):
            rendered.add(f"{group}/{doc['kind'].lower()}_{version}.json")
    # The Sealed Secrets schema ships for the documented swap of the ExternalSecret (deploy/README.md).
    carried = {p.relative_to(root / "deploy/schemas").as_posix()[:-3] for p in (root / "deploy/schemas").rglob("*.gz")}
    assert carried == rendered | {"bitnami.com/sealedsecret_v1alpha1.json"}
    assert json.loads((root / "deploy/schemas/catalog.json").read_text())["commit"] == COMMIT


def test_project_refreshes_its_schemas_from_a_catalog_checkout(tmp_path: Path) -> None:
    """`manifests schemas --commit --from` rewrites deploy/schemas; a bad commit or path is exit 2 and one line."""
    root = generate(tmp_path / "project")
    folder = root / "deploy/schemas"
    paths = {p.relative_to(folder).as_posix()[:-3]: p for p in folder.rglob("*.gz")}
    catalog = tmp_path / "catalog"
    unpack(folder, catalog, paths)
    extra = catalog / "argoproj.io/workflow_v1alpha1.json"
    extra.write_text(json.dumps({"type": "object", "properties": {"spec": {"type": "object"}}}, indent=2))

    done = cli(root, "manifests", "schemas", "--commit", OTHER_COMMIT, "--from", str(catalog),
               "--add", "argoproj.io/workflow_v1alpha1.json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"{len(paths) + 1} schemas" in done.stdout
    assert gzip.decompress((folder / "argoproj.io/workflow_v1alpha1.json.gz").read_bytes()) == (
        b'{"properties":{"spec":{"type":"object"}},"type":"object"}'
    )
    assert json.loads((folder / "catalog.json").read_text())["commit"] == OTHER_COMMIT
    assert cli(root, "manifests", "validate").returncode == 0

    for args, message in [
        (["--commit", "main"], "is not a full 40-character commit"),
        (["--commit", COMMIT, "--from", str(tmp_path / "nowhere")], "does not exist"),
        (["--commit", COMMIT, "--add", "../../etc/passwd"], "give a catalog path"),
    ]:
        done = cli(root, "manifests", "schemas", *args)
        assert done.returncode == 2, done.stderr
        assert message in done.stderr and "Traceback" not in done.stderr
