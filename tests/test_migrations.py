"""Update migrations: each one from the release before it, rerun safely, and refusing rather than losing data."""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from packaging.version import Version

from .conftest import REPO_ROOT, project_files, run
from .releases import TemplateClone, changelog_releases
from .test_update import EARLIER, commit, conflicts, copy_release, update, updated_with_raised_bound

MIGRATION = REPO_ROOT / "hooks" / "migrate_success_criteria.py"
PIN_TEMPLATE = "includes/overlay-model.yaml.jinja"
BEFORE_0_2_0 = max(v for v in changelog_releases() if v < Version("0.2.0"))

OLD_PARAMS = """# Project parameters
evaluate:
  decision_threshold: 0.5
  # our bar, agreed with the retention team
  criteria:
    roc_auc: {min: 0.8}   # raised in March
    f1: {min: 0.55}
  slice_by: [region]

register:
  model_name: churn
  criteria: not-the-evaluate-one
"""


def migrate(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(MIGRATION)], cwd=cwd, capture_output=True, text=True)


def test_renames_in_place_keeping_values_and_comments(tmp_path: Path) -> None:
    """Only the key under evaluate changes; values, comments and other sections stay byte for byte."""
    (tmp_path / "params.yaml").write_text(OLD_PARAMS)
    done = migrate(tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "params.yaml").read_text() == OLD_PARAMS.replace(
        "  criteria:\n    roc", "  success_criteria:\n    roc"
    )


def test_rerun_changes_nothing(tmp_path: Path) -> None:
    """A second run (or a run on a project already migrated) leaves the file as it is."""
    (tmp_path / "params.yaml").write_text(OLD_PARAMS)
    migrate(tmp_path)
    once = (tmp_path / "params.yaml").read_text()
    done = migrate(tmp_path)
    assert done.returncode == 0 and done.stdout == ""
    assert (tmp_path / "params.yaml").read_text() == once


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (OLD_PARAMS.replace("  slice_by", "  success_criteria: {}\n  slice_by"), "both"),
        ("evaluate: {criteria: {roc_auc: {min: 0.8}}}\n", "by hand"),
        ("evaluate:\n  criteria: [unclosed\n", "not valid YAML"),
    ],
    ids=["both-keys", "flow-style", "broken-yaml"],
)
def test_refuses_what_it_cannot_rename_safely(tmp_path: Path, text: str, reason: str) -> None:
    """When the rename is ambiguous or unsafe, the file is untouched and the message says what to do."""
    (tmp_path / "params.yaml").write_text(text)
    done = migrate(tmp_path)
    assert done.returncode == 1
    assert reason in done.stderr and "params.yaml" in done.stderr
    assert (tmp_path / "params.yaml").read_text() == text


def test_refusal_stops_the_update_before_any_change(template_clone: TemplateClone, tmp_path: Path) -> None:
    """A migration that refuses aborts `copier update`, and the project stays at its release, untouched."""
    project = copy_release(template_clone, template_clone.tag(BEFORE_0_2_0), tmp_path / "project", tmp_path / "remote")
    params = project / "params.yaml"
    params.write_text(params.read_text().replace("  slice_by:", "  success_criteria: {}\n  slice_by:"))
    commit(project, "Both keys")
    head = run(["git", "rev-parse", "HEAD"], cwd=project)

    with pytest.raises(Exception, match="migrate_success_criteria"):
        update(project)

    assert run(["git", "status", "--porcelain"], cwd=project) == ""
    assert run(["git", "rev-parse", "HEAD"], cwd=project) == head


def test_project_value_next_to_the_rename_is_kept(template_clone: TemplateClone, tmp_path: Path) -> None:
    """A bound the project raised beside the renamed key is shown as a conflict whose both sides use the new key."""
    project = updated_with_raised_bound(template_clone, template_clone.tag(BEFORE_0_2_0), tmp_path)

    shown = conflicts(project)
    assert list(shown) == ["params.yaml"]
    # Keeping the project's side of every conflict gives the new layout with the project's value.
    ours = re.sub(r"<<<<<<< [^\n]*\n(.*?)=======\n.*?>>>>>>> [^\n]*\n", r"\1", shown["params.yaml"], flags=re.S)
    evaluate = yaml.safe_load(ours)["evaluate"]
    assert "criteria" not in evaluate
    assert evaluate["success_criteria"]["roc_auc"] == {"min": 0.8}


@pytest.mark.parametrize("monitoring", [True, False], ids=["monitoring", "no-monitoring"])
def test_pinned_environment_keeps_serving_across_the_image_pin(
    template_clone: TemplateClone, tmp_path: Path, monitoring: bool
) -> None:
    """Updating to 0.3.0, a pinned environment gets the image of its version and an unpinned one none, no conflict."""
    # The newest commit whose pins have no image (no release before 0.3.0 has pins at all).
    added = run(["git", "log", "-1", "--format=%H", "-S", 'image: "none"', "--", PIN_TEMPLATE], cwd=REPO_ROOT).strip()
    before = run(["git", "rev-parse", f"{added}^" if added else "HEAD"], cwd=REPO_ROOT).strip()
    project = copy_release(
        template_clone, before, tmp_path / "project", tmp_path / "remote",
        enable_monitoring=monitoring, serving_runtime="deployment",
    )  # fmt: skip
    commit_sha = "0123456789abcdef0123456789abcdef01234567"
    dev = project / "deploy/overlays/dev/model.yaml"
    text = dev.read_text()
    for old, new in [
        ('  version: "none"', '  version: "4"'),
        ('storageUri: "none"', 'storageUri: "s3://models/4/artifacts/model"'),
        ('model.mlops/git-commit: "none"', f'model.mlops/git-commit: "{commit_sha}"'),
        ("replicas: 0", "replicas: 1"),
    ]:
        assert old in text
        text = text.replace(old, new, 1)
    dev.write_text(text)
    commit(project, "Promote model version 4 to dev")

    update(project)

    assert conflicts(project) == {}
    image = yaml.safe_load((project / "params.yaml").read_text())["argo"]["image"]
    pinned = yaml.safe_load(dev.read_text())["spec"]
    assert pinned["image"] == f"{image}:{commit_sha}" and pinned["version"] == "4"
    unpinned = yaml.safe_load((project / "deploy/overlays/prod/model.yaml").read_text())["spec"]
    assert unpinned["image"] == "none"
    if monitoring:
        assert pinned["suspendDrift"] is False and unpinned["suspendDrift"] is True
    else:
        assert "suspendDrift" not in pinned

    # Running the migration again changes nothing.
    before = dev.read_text()
    run([sys.executable, str(REPO_ROOT / "hooks/migrate_pin_image.py")], cwd=project)
    assert dev.read_text() == before


# 0.3.0: the package regrouped by lifecycle role ------------------------------

LAYOUT_MIGRATION = REPO_ROOT / "hooks" / "migrate_package_layout.py"
OLD_PACKAGE = "template/src/{{package_name}}"


def load_layout_migration() -> ModuleType:
    spec = importlib.util.spec_from_file_location("migrate_package_layout", LAYOUT_MIGRATION)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


layout_migration = load_layout_migration()
# The releases whose package still had the flat layout: the ones this migration moves from.
OLD_LAYOUT = [v for v in EARLIER if v < Version("0.3.0")]


def last_commit_with_old_layout() -> str:
    """The last template commit whose package had serve.py, monitor.py and the other modules at the top."""
    removed = run(["git", "log", "-1", "--format=%H", "--", f"{OLD_PACKAGE}/serve.py"], cwd=REPO_ROOT).strip()
    return run(["git", "rev-parse", f"{removed}^"], cwd=REPO_ROOT).strip()


def layout(**defined: list[str]) -> Any:
    """What moved, as the migration sees it after an update from the old layout, for the package `pkg`."""
    return layout_migration.Layout(
        "pkg",
        moved=dict(layout_migration.MOVED),
        split=dict(layout_migration.SPLIT),
        scripts=dict(layout_migration.SCRIPTS),
        defined=defined,
    )


DEFINED = {
    "build_app": ["serving.server"],
    "parse_request": ["serving.protocol"],
    "ServedModel": ["serving.model"],
    "drift": ["monitoring.drift"],
    "main": ["cli", "stages.train", "serving.server"],
}


@pytest.mark.parametrize(
    ("source", "resolve_in", "expected"),
    [
        ("from pkg.featurize import split\n", None, "from pkg.stages.featurize import split\n"),
        ("from .featurize import split  # ours\n", "pkg", "from .stages.featurize import split  # ours\n"),
        ("from ..tracking import configure\n", "pkg.own", "from ..registry import configure\n"),
        (
            "from . import config, featurize, tracking\n",
            "pkg",
            "from . import config\nfrom .stages import featurize\nfrom . import registry as tracking\n",
        ),
        ("from pkg import stage_graph as g\n", None, "from pkg.argo import dag as g\n"),
        (
            "import pkg.train\n\n\ndef f():\n    return pkg.train.main, pkg.config\n",
            None,
            "import pkg.stages.train\n\n\ndef f():\n    return pkg.stages.train.main, pkg.config\n",
        ),
        ("import pkg.tracking as t\n", None, "import pkg.registry as t\n"),
        (
            "import pkg.serve\n\napp = pkg.serve.build_app(pkg.serve.parse_request)\n",
            None,
            "import pkg.serving.server\nimport pkg.serving.protocol\n\n"
            "app = pkg.serving.server.build_app(pkg.serving.protocol.parse_request)\n",
        ),
        (
            "def f():\n    from pkg.serve import ServedModel, build_app as app\n",
            None,
            "def f():\n    from pkg.serving.model import ServedModel\n"
            "    from pkg.serving.server import build_app as app\n",
        ),
        (
            'patch("pkg.tracking.configure")\npatch("pkg.serve.main")\n',
            None,
            'patch("pkg.registry.configure")\npatch("pkg.serving.server.main")\n',
        ),
        ("from pkg.stages.featurize import split\nfrom pkg.argo.render import render\n", None, None),
    ],
    ids=[
        "absolute",
        "relative",
        "relative-renamed",
        "modules-from-the-package",
        "renamed-module-as-name",
        "import-and-uses",
        "import-as",
        "split-import-and-uses",
        "split-names",
        "dotted-strings",
        "already-new",
    ],
)
def test_layout_rewrites_imports(source: str, resolve_in: str | None, expected: str | None) -> None:
    """Every way of naming a moved module is rewritten to the new one; a second pass changes nothing."""
    done = layout_migration.rewrite_imports(source, layout(**DEFINED), resolve_in)
    assert done.text == (source if expected is None else expected)
    assert done.refused == []
    assert bool(done.done) == (expected is not None and expected != source)
    assert layout_migration.rewrite_imports(done.text, layout(**DEFINED), resolve_in).text == done.text


@pytest.mark.parametrize(
    ("source", "why"),
    [
        ("from pkg import serve\n", "serve.py was split"),
        ("from pkg.monitor import nowhere\n", "'nowhere' is in no single one"),
        ("import pkg.serve as s\n", "serve.py was split"),
        ("import pkg.serve\n\nm = pkg.serve\n", "uses the module as a whole"),
        ("from pkg.bench_serving import main\n", "bench/serving.py"),
        ('x = "pkg.serve"\n', "name the new module"),
    ],
    ids=["split-module-as-name", "unknown-name", "split-import-as", "split-module-object", "script", "split-string"],
)
def test_layout_names_what_it_cannot_rewrite(source: str, why: str) -> None:
    """What has no single new place is left as it is, with the line and what to do."""
    done = layout_migration.rewrite_imports(source, layout(**DEFINED), None)
    assert done.text == source
    assert len(done.refused) == 1 and why in done.refused[0] and done.refused[0].startswith("1: ")


def test_layout_keeps_lines_of_the_new_release() -> None:
    """A line the new release has (here `from .argo import render`, a subpackage import now) stays."""
    source = "from .argo import render\nfrom .featurize import split\n"
    done = layout_migration.rewrite_imports(source, layout(render=["argo.render"]), "pkg", keep={source.split("\n")[0]})
    assert done.text == "from .argo import render\nfrom .stages.featurize import split\n"


def test_layout_moved_module_imports_for_its_new_place() -> None:
    """Relative imports of a module moved one level down point one level further up, moved modules included."""
    source = "from . import errors\nfrom .config import Params\nfrom .tracking import configure\n"
    done = layout_migration.rewrite_imports(source, layout(), "pkg", "pkg.stages")
    assert done.text == "from .. import errors\nfrom ..config import Params\nfrom ..registry import configure\n"


def test_layout_names_conflicted_files_that_import_moved_modules() -> None:
    """A file left in conflict does not parse; its lines that import moved modules are still found."""
    stale = layout_migration.stale_imports
    assert stale("<<<<<<< before updating\nfrom .featurize import split\n", layout(), set())
    assert stale("from pkg import (\n    config,\n)\nfrom pkg import config, tracking\n", layout(), set())
    assert stale("    import pkg.serve\n", layout(), set())
    assert not stale("from .stages.featurize import split\nfrom pkg import config\n", layout(), set())
    assert not stale("from .argo import render\n", layout(), {"from .argo import render"})


SPLIT_BASE = '''"""Old module."""

import json


def a() -> int:
    return 1


def b() -> str:
    return json.dumps({})
'''
NEW_MODULES = {
    "serving.x": '"""New x."""\n\nimport os\n\n\ndef a() -> int:\n    return 1\n',
    "serving.y": '"""New y."""\n\nimport json\n\n\ndef b() -> str:\n    return json.dumps({"new": True})\n',
}
LABELS = ("ours", "base", "theirs")


def test_layout_split_edits_go_where_each_definition_went() -> None:
    """An edited definition is merged into the new module that has it, with what the project added beside it."""
    ours = SPLIT_BASE.replace("import json\n", "import json\nimport math\n").replace(
        "    return 1\n", "    return math.floor(1.5)\n\n\ndef helper() -> None:\n    pass\n"
    )
    placed = layout_migration.place_split(ours, SPLIT_BASE, NEW_MODULES, "serving", LABELS)
    assert placed.conflicts == {"serving.x": 0}
    assert placed.texts == {
        "serving.x": '"""New x."""\n\nimport os\nimport math\n\n\ndef a() -> int:\n    return math.floor(1.5)\n'
        "\n\ndef helper() -> None:\n    pass\n"
    }


def test_layout_split_edit_beside_a_template_change_merges_three_ways() -> None:
    """The project's line and the release's change of the same definition meet as a conflict in that module."""
    ours = SPLIT_BASE.replace("json.dumps({})", "json.dumps({'ours': 1})")
    placed = layout_migration.place_split(ours, SPLIT_BASE, NEW_MODULES, "serving", LABELS)
    assert placed.conflicts == {"serving.y": 1}
    assert "<<<<<<< ours" in placed.texts["serving.y"] and "{'ours': 1}" in placed.texts["serving.y"]


@pytest.mark.parametrize(
    ("edit", "why"),
    [
        (lambda text: text.replace("\n\ndef b() -> str:\n    return json.dumps({})\n", ""), "b removed"),
        (lambda text: text + "\n\ndef c() -> None:\n    pass\n", "no edited definition"),
        (lambda text: text.replace("Old module.", "Our module."), "module-level code"),
        (lambda text: text.replace("    return 1\n", "    return 2\n").replace("a()", "z()"), "a removed"),
    ],
    ids=["removed", "added-alone", "docstring", "renamed"],
)
def test_layout_split_edits_without_one_place_are_refused(edit: Any, why: str) -> None:
    """When an edit has no single new module, the reason comes back and nothing is merged."""
    placed = layout_migration.place_split(edit(SPLIT_BASE), SPLIT_BASE, NEW_MODULES, "serving", LABELS)
    assert isinstance(placed, str) and why in placed


def statically_unresolved(project: Path, package: str, path: str) -> list[str]:
    """Imports of the package (or of the runtime) in `path` naming a module or a name that neither has."""
    roots = [project / "src", REPO_ROOT / "runtime" / "src"]

    def module_file(dotted: str) -> Path | None:
        bases = [root / dotted.replace(".", "/") for root in roots]
        candidates = [p for base in bases for p in (base.with_suffix(".py"), base / "__init__.py")]
        return next((p for p in candidates if p.is_file()), None)

    def has(dotted: str, name: str) -> bool:
        file = module_file(dotted)
        if file is None:
            return False
        if module_file(f"{dotted}.{name}"):
            return True
        tree = ast.parse(file.read_text())
        bound = set()
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                bound.add(node.name)
            elif isinstance(node, ast.Assign):
                bound |= {t.id for t in node.targets if isinstance(t, ast.Name)}
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                bound |= {(a.asname or a.name).split(".")[0] for a in node.names}
        return name in bound

    parts = Path(path).with_suffix("").parts
    here = ".".join(parts[1:-1]) if parts[0] == "src" else None
    problems = []
    tree = ast.parse((project / path).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = node.module
            if node.level:
                base = here.split(".")[: len(here.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            if module and module.split(".")[0] in (package, RUNTIME):
                problems += [f"{node.lineno}: {module}.{a.name}" for a in node.names if not has(module, a.name)]
        elif isinstance(node, ast.Import):
            problems += [
                f"{node.lineno}: {a.name}"
                for a in node.names
                if a.name.split(".")[0] in (package, RUNTIME) and module_file(a.name) is None
            ]
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            dotted = ast.unparse(node.value)
            if dotted.split(".")[0] in (package, RUNTIME) and module_file(dotted) and not has(dotted, node.attr):
                problems.append(f"{node.lineno}: {dotted}.{node.attr}")
    return problems


RUNTIME = "mlops_runtime"
OWN_MODULE = '''"""Statistics this project adds on its own."""

from . import featurize
from .featurize import build_preprocessor
from .tracking import configure


def preprocessor_for(contract):
    return build_preprocessor(contract), featurize.split, configure
'''
OWN_TEST = """import {package}.train
from {package} import evaluate, tracking
from {package}.featurize import build_preprocessor, split


def test_names(monkeypatch):
    monkeypatch.setattr("{package}.tracking.configure", lambda params: None)
    assert {package}.train.make_estimator and evaluate.score and tracking.tracking_uri
    assert build_preprocessor and split
"""


def project_contents(project: Path) -> dict[str, bytes]:
    return {path: (project / path).read_bytes() for path in project_files(project)}


def run_layout_migration(project: Path, clone: TemplateClone) -> str:
    """The migration run again by hand, as the template ships it, from the template it came with."""
    migration = clone.path / "hooks" / LAYOUT_MIGRATION.name
    return run([sys.executable, str(migration), str(clone.path)], cwd=project)


@pytest.mark.parametrize("release", OLD_LAYOUT, ids=[f"from-{v}" for v in OLD_LAYOUT])
def test_project_imports_of_moved_modules_are_rewritten(
    template_clone: TemplateClone, tmp_path: Path, release: Version, capfd: pytest.CaptureFixture[str]
) -> None:
    """A module and a test of the project's own import moved modules: after the update they import the new ones."""
    project = copy_release(template_clone, template_clone.tag(release), tmp_path / "project", tmp_path / "remote")
    package = yaml.safe_load((project / ".copier-answers.yml").read_text())["package_name"]
    (project / f"src/{package}/own_stats.py").write_text(OWN_MODULE)
    (project / "tests/test_own.py").write_text(OWN_TEST.format(package=package))
    commit(project, "Own module and test")
    capfd.readouterr()

    update(project)

    printed = capfd.readouterr().out
    assert conflicts(project) == {}
    own = (project / f"src/{package}/own_stats.py").read_text()
    # Moved into stages/ by the update to 0.3.0; the registry is the runtime's from 0.4.0.
    assert own == (
        OWN_MODULE.replace("from . import featurize\n", "from .stages import featurize\n")
        .replace("from .featurize import", "from .stages.featurize import")
        .replace("from .tracking import", f"from {RUNTIME}.registry import")
    )
    test = (project / "tests/test_own.py").read_text()
    assert f"import {package}.stages.train\n" in test and f"{package}.stages.train.make_estimator" in test
    assert f"from {package} import evaluate, tracking" not in test
    assert f'"{RUNTIME}.registry.configure"' in test
    for path in (f"src/{package}/own_stats.py", "tests/test_own.py"):
        assert statically_unresolved(project, package, path) == []
        assert f"{path}:" in printed  # each rewrite is listed
    assert "Imports of moved modules rewritten:" in printed

    # Run again (the update not committed yet, HEAD still the old layout): nothing changes, nothing to say.
    before = project_contents(project)
    assert run_layout_migration(project, template_clone) == ""
    assert project_contents(project) == before


def stable_definition(old_text: str, new_modules: dict[str, str]) -> tuple[str, str, str]:
    """A function of an old module that exactly one new module has unchanged: (name, its text, that module)."""
    lines = old_text.splitlines(keepends=True)
    for node in ast.parse(old_text).body:
        if isinstance(node, ast.FunctionDef) and not node.decorator_list and len(node.body) > 1:
            text = "".join(lines[node.lineno - 1 : node.end_lineno])
            homes = [module for module, new in new_modules.items() if text in new]
            if "import" not in text and len(homes) == 1:
                return node.name, text, homes[0]
    raise LookupError("no function of the old module is unchanged in the new release")


@pytest.fixture
def old_layout_project(template_clone: TemplateClone, tmp_path: Path) -> tuple[Path, str]:
    """A project generated from the last commit with the old layout, and its package."""
    project = copy_release(template_clone, last_commit_with_old_layout(), tmp_path / "project", tmp_path / "remote")
    return project, yaml.safe_load((project / ".copier-answers.yml").read_text())["package_name"]


def test_edited_split_module_is_merged_where_its_definitions_went(
    old_layout_project: tuple[Path, str], template_clone: TemplateClone, capfd: pytest.CaptureFixture[str]
) -> None:
    """serve.py was split, and its parts are the runtime's now: the project's edit is kept as serve.py.orig, pointed
    at the serving hook, and the project's import of it follows the function into the runtime."""
    project, package = old_layout_project
    serving = template_clone.path / "runtime/src" / RUNTIME / "serving"
    new_modules = {path.name: path.read_text() for path in serving.glob("*.py")}
    serve = project / f"src/{package}/serve.py"
    name, text, home = stable_definition(serve.read_text(), new_modules)
    signature_end = text.index(":\n", text.index(")")) + 2
    edited = text[:signature_end] + "    # Project note: reviewed by the serving team.\n" + text[signature_end:]
    added = '\n\ndef served_by() -> str:\n    return "the serving team"\n'
    serve.write_text(serve.read_text().replace(text, edited + added, 1))
    (project / "tests/test_own_serving.py").write_text(
        f"import {package}.serve\n\n\ndef test_names():\n    assert {package}.serve.{name}\n"
    )
    commit(project, "Project edits of the server")
    capfd.readouterr()

    update(project)

    printed = capfd.readouterr().out
    assert conflicts(project) == {}
    kept = project / f"src/{package}/serve.py.orig"
    assert not serve.exists() and kept.is_file()
    assert edited in kept.read_text() and added.strip() in kept.read_text()
    assert f"src/{package}/serve.py.orig: the project's edit of serve.py" in printed and "a serving hook" in printed
    module = home.removesuffix(".py")
    own = (project / "tests/test_own_serving.py").read_text()
    assert (
        own
        == f"import {RUNTIME}.serving.{module}\n\n\ndef test_names():\n    assert {RUNTIME}.serving.{module}.{name}\n"
    )
    assert statically_unresolved(project, package, "tests/test_own_serving.py") == []

    before = project_contents(project)
    assert run_layout_migration(project, template_clone) == ""
    assert project_contents(project) == before


def test_split_module_edit_without_one_place_is_left_beside_the_new_modules(
    old_layout_project: tuple[Path, str], template_clone: TemplateClone, capfd: pytest.CaptureFixture[str]
) -> None:
    """An edit of monitor.py, whose parts are the runtime's now, leaves the project's file as .py.orig pointed at
    the monitoring hook, and says so; the project holds no monitoring code of the template any more."""
    project, package = old_layout_project
    monitor = project / f"src/{package}/monitor.py"
    lines = monitor.read_text().splitlines(keepends=True)
    edited = "".join(lines).replace('"""', '"""Monitoring as this project runs it. ', 1)
    monitor.write_text(edited)
    commit(project, "Own docstring")
    capfd.readouterr()

    update(project)

    printed = capfd.readouterr().out
    orig = project / f"src/{package}/monitor.py.orig"
    assert orig.read_text() == edited
    assert f"src/{package}/monitor.py.orig: the project's edit of monitor.py" in printed
    assert "a monitoring hook" in printed
    assert not (project / f"src/{package}/monitoring").exists() and not monitor.exists()

    before = project_contents(project)
    assert run_layout_migration(project, template_clone) == ""
    assert project_contents(project) == before


def test_layout_migration_does_nothing_on_a_new_project(template_clone: TemplateClone, tmp_path: Path) -> None:
    """A project generated with the new layout has none of the old modules: nothing to do, nothing said."""
    project = copy_release(template_clone, template_clone.newest, tmp_path / "project", tmp_path / "remote")
    before = project_contents(project)
    assert run_layout_migration(project, template_clone) == ""
    assert project_contents(project) == before
    assert run(["git", "status", "--porcelain"], cwd=project) == ""


def test_edits_follow_the_move_from_a_gh_source(template_clone: TemplateClone, tmp_path: Path) -> None:
    """From a gh: source (copier's own clone of the URL), the old release is read from that clone."""
    url = "https://github.com/mlops-example/template.git"
    env = {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": f"url.{template_clone.path}.insteadOf",
        "GIT_CONFIG_VALUE_0": url,
        "COPIER_CACHE_DIR": str(tmp_path / "copier-cache"),
    }
    project = tmp_path / "project"
    run(
        ["copier", "copy", "--trust", "--defaults", "--vcs-ref", template_clone.tag(OLD_LAYOUT[-1])]
        + ["--data", f"dvc_remote_url={tmp_path / 'remote'}", "gh:mlops-example/template", str(project)],
        cwd=tmp_path,
        env=env,
    )
    package = yaml.safe_load((project / ".copier-answers.yml").read_text())["package_name"]
    featurize = project / f"src/{package}/featurize.py"
    featurize.write_text(featurize.read_text() + "\n\n# Project note: from the gh: source.\n")
    commit(project, "Project note")

    run(["copier", "update", "--trust", "--defaults", "--conflict", "inline"], cwd=project, env=env)

    assert (
        (project / f"src/{package}/stages/featurize.py").read_text().endswith("# Project note: from the gh: source.\n")
    )
    assert conflicts(project) == {}
