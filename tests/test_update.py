"""`copier update` from every earlier release to the working tree: edits kept, conflicts shown, data untouched."""

from __future__ import annotations

import difflib
import subprocess
import sys
from pathlib import Path
from typing import Any

import copier
import pathspec
import pytest
import yaml
from packaging.version import Version

from .conftest import project_files, run
from .releases import TemplateClone, changelog_releases, working_tree_version

ANSWERS = ".copier-answers.yml"
# Files the project owns: `_skip_if_exists` in copier.yml (gitignore-style patterns, as copier reads them).
OWNED = pathspec.PathSpec.from_lines(
    "gitignore", yaml.safe_load((Path(__file__).parents[1] / "copier.yml").read_text()).get("_skip_if_exists", [])
)
# Local state of DVC and git that differs between any two checkouts, and uv.lock: the copy
# task resolves it for a new project; an update leaves locking to the project's `make setup`.
# .venv/ too: the environment copy tasks install (its .pyc files carry install times), not the project.
MACHINE_STATE = (".git/", ".dvc/tmp/", ".dvc/cache/", ".venv/", "uv.lock")
MARKERS = ("<<<<<<< ", ">>>>>>> ")

# Every release listed in CHANGELOG.md is supported as a starting point.
EARLIER = [v for v in sorted(changelog_releases()) if v < working_tree_version()]


def copy_release(clone: TemplateClone, ref: str, dst: Path, remote: Path, **answers: Any) -> Path:
    """Generate a project from the clone at `ref`, with its copy task (git, data, DVC, first commit)."""
    copier.run_copy(
        str(clone.path),
        str(dst),
        data={"dvc_remote_url": str(remote), **answers},
        defaults=True,
        unsafe=True,
        vcs_ref=ref,
        quiet=True,
    )
    return dst


def update(project: Path, **data: Any) -> None:
    """`copier update` to the newest tag with the stored answers, conflicts inline."""
    copier.run_update(
        str(project), data=data, defaults=True, overwrite=True, unsafe=True, quiet=True, conflict="inline"
    )


def commit(project: Path, message: str) -> None:
    run(["git", "add", "--all"], cwd=project)
    run(["git", "commit", "--quiet", "--no-verify", "-m", message], cwd=project)


def updated_with_raised_bound(clone: TemplateClone, ref: str, tmp_path: Path) -> Path:
    """A project from `ref` that raised a success criterion right below the key 0.2.0 renames, then updated."""
    project = copy_release(clone, ref, tmp_path / "project", tmp_path / "remote")
    params = project / "params.yaml"
    params.write_text(params.read_text().replace("roc_auc: {min: 0.75}", "roc_auc: {min: 0.8}"))
    commit(project, "Raise the bar")
    update(project)
    return project


def contents(root: Path) -> dict[str, bytes]:
    """Bytes of every file outside git's and DVC's local state."""
    return {
        path: (root / path).read_bytes()
        for path in project_files(root) | {p.relative_to(root).as_posix() for p in root.glob(".dvc/*") if p.is_file()}
        if not path.startswith(MACHINE_STATE)
    }


def conflicts(root: Path) -> dict[str, str]:
    """Files that still hold conflict markers, and rejected-hunk files, by path."""
    found = {}
    for path in project_files(root):
        text = (root / path).read_text(encoding="utf-8", errors="replace")
        if path.endswith(".rej") or any(line.startswith(MARKERS) for line in text.splitlines()):
            found[path] = text
    return found


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One DVC remote for every project here: the answers, and so .dvc/config, are then the same."""
    return tmp_path_factory.mktemp("dvc") / "remote"


@pytest.fixture(scope="module")
def newest(template_clone: TemplateClone, remote: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """A fresh copy of the working tree (the newest tag), task included."""
    dst = tmp_path_factory.mktemp("newest") / "project"
    return contents(copy_release(template_clone, template_clone.newest, dst, remote))


@pytest.fixture(params=EARLIER, ids=[f"from-{v}" for v in EARLIER])
def old_project(request: pytest.FixtureRequest, template_clone: TemplateClone, remote: Path, tmp_path: Path) -> Path:
    """A project generated from one earlier release, with its sample data in DVC."""
    return copy_release(template_clone, template_clone.tag(request.param), tmp_path / "project", remote)


def test_every_earlier_release_is_tested() -> None:
    """The update tests start from at least one release; more join as CHANGELOG.md lists them."""
    assert EARLIER, "CHANGELOG.md lists no release older than the working tree"


def test_unmodified_project_becomes_a_fresh_copy(old_project: Path, newest: dict[str, bytes]) -> None:
    """An untouched project updates to exactly the newest fresh copy; project-owned files and the data stay."""
    before = contents(old_project)
    update(old_project)

    after = contents(old_project)
    assert conflicts(old_project) == {}
    # A project-owned file keeps what the project had; one the old release lacked arrives as rendered now.
    for path in sorted(p for p in set(after) | set(newest) if OWNED.match_file(p)):
        assert after.get(path) == (before[path] if path in before else newest.get(path)), path
    assert {p: d for p, d in after.items() if p != ANSWERS and not OWNED.match_file(p)} == {
        p: d for p, d in newest.items() if p != ANSWERS and not OWNED.match_file(p)
    }
    # The raw data that DVC tracks is never rendered, so the update leaves it as it was.
    for path in ("data/raw.dvc", "data/.gitignore", "data/raw/customers.csv"):
        assert after[path] == before[path]


USER_MODULE = '''"""Features this project adds on its own."""


def tenure_years(months: float) -> float:
    return months / 12
'''
USER_STAGE = """
  report:
    cmd: python -m our_reports build
    deps:
      - reports/metrics.json
    outs:
      - reports/summary.html
"""


def test_user_edits_survive(old_project: Path, newest: dict[str, bytes]) -> None:
    """Own features, changed params, an extra stage and an edited README are all kept through the update.

    featurize.py moved to stages/ in 0.3.0: from earlier releases, the project's edit of it follows it there.
    """
    package = yaml.safe_load((old_project / ANSWERS).read_text())["package_name"]
    (old_project / f"src/{package}/extra_features.py").write_text(USER_MODULE)
    flat = old_project / f"src/{package}/featurize.py"
    featurize = flat if flat.exists() else old_project / f"src/{package}/stages/featurize.py"
    featurize.write_text(featurize.read_text() + "\n\n# Project note: tenure is also used in years (extra_features).\n")
    params = old_project / "params.yaml"
    params.write_text(
        params.read_text()
        .replace("  test_size: 0.2\n", "  test_size: 0.25\n")
        .replace("      max_depth: [3, 6]\n", "      max_depth: [3, 6, 9]\n")
    )
    dvc_yaml = old_project / "dvc.yaml"
    dvc_yaml.write_text(dvc_yaml.read_text() + USER_STAGE)
    readme = old_project / "README.md"
    readme.write_text("# Churn at ACME\n\nOwned by the retention team.\n" + readme.read_text())
    commit(old_project, "Project edits")
    edited_readme = readme.read_bytes()

    update(old_project)

    after = contents(old_project)
    assert conflicts(old_project) == {}
    assert after[f"src/{package}/extra_features.py"] == USER_MODULE.encode()
    assert f"src/{package}/featurize.py" not in after
    assert after[f"src/{package}/stages/featurize.py"].endswith(
        b"# Project note: tenure is also used in years (extra_features).\n"
    )
    # Apart from the project's note, the module is the newest one.
    assert after[f"src/{package}/stages/featurize.py"] == newest[f"src/{package}/stages/featurize.py"] + (
        b"\n\n# Project note: tenure is also used in years (extra_features).\n"
    )
    assert after["README.md"] == edited_readme
    values = yaml.safe_load(after["params.yaml"])
    assert values["featurize"]["test_size"] == 0.25
    assert values["train"]["search"]["space"]["max_depth"] == [3, 6, 9]
    # Apart from the project's own values, params.yaml has the newest layout.
    fresh = yaml.safe_load(newest["params.yaml"])
    fresh["featurize"]["test_size"], fresh["train"]["search"]["space"]["max_depth"] = 0.25, [3, 6, 9]
    assert values == fresh
    stages = yaml.safe_load(after["dvc.yaml"])["stages"]
    assert stages["report"]["cmd"] == "python -m our_reports build"
    assert {k: v for k, v in stages.items() if k != "report"} == yaml.safe_load(newest["dvc.yaml"])["stages"]
    # Files the project did not touch are exactly the newest ones.
    touched = {f"src/{package}/stages/featurize.py", "params.yaml", "dvc.yaml", "README.md", ANSWERS}
    for path in sorted(p for p in set(newest) - touched if not OWNED.match_file(p)):
        assert after.get(path) == newest[path], path


def template_changed_line(old: dict[str, bytes], new: dict[str, bytes]) -> tuple[str, str] | None:
    """A (file, line) of the old release that the newest one rewrites, or right before lines it inserts."""
    for path in sorted(set(old) & set(new) - {ANSWERS}):
        if path.startswith("data/") or OWNED.match_file(path) or old[path] == new[path]:
            continue
        before, after = old[path].decode().splitlines(), new[path].decode().splitlines()
        for tag, i1, i2, _, _ in difflib.SequenceMatcher(a=before, b=after, autojunk=False).get_opcodes():
            if tag in ("replace", "delete"):
                candidates = before[i1:i2]
            elif tag == "insert":
                candidates = before[max(i1 - 1, 0) : i1 + 1]  # an edit touching an insertion conflicts too
            else:
                continue
            if changed := [line for line in candidates if line.strip()]:
                return path, changed[0]
    return None


def test_conflicting_edit_is_shown(old_project: Path, newest: dict[str, bytes]) -> None:
    """Where the project and the template changed the same lines, the update leaves a visible conflict."""
    before = contents(old_project)
    target = template_changed_line(before, newest)
    if target is None:
        # This release renders like the working tree: nothing can conflict, and nothing may change.
        update(old_project)
        assert {p: d for p, d in contents(old_project).items() if p != ANSWERS} == {
            p: d for p, d in before.items() if p != ANSWERS
        }
        return
    path, line = target
    file = old_project / path
    edited_line = line + "  # changed by the project"
    file.write_text(file.read_text().replace(line + "\n", edited_line + "\n", 1))
    commit(old_project, "Edit a line the template changes")

    update(old_project)

    shown = conflicts(old_project)
    assert path in shown or f"{path}.rej" in shown, f"no conflict shown for {path}: {sorted(shown)}"
    text = shown.get(path) or shown[f"{path}.rej"]
    assert edited_line in text  # the project's side is in the conflict, not dropped


def test_dirty_tree_is_refused(template_clone: TemplateClone, tmp_path: Path) -> None:
    """Uncommitted changes stop the update with a message saying what to do, and nothing changes."""
    project = copy_release(template_clone, template_clone.tag(EARLIER[0]), tmp_path / "project", tmp_path / "remote")
    (project / "params.yaml").write_text((project / "params.yaml").read_text() + "\n# not committed\n")
    before = contents(project)

    done = subprocess.run(
        [sys.executable, "-m", "copier", "update", "--trust", "--defaults", "--quiet"],
        cwd=project,
        capture_output=True,
        text=True,
    )

    assert done.returncode != 0
    assert "dirty" in done.stderr and "commit or stash" in done.stderr, done.stderr
    assert contents(project) == before


def test_changed_answers_reach_the_files(old_project: Path, tmp_path: Path) -> None:
    """`--data` on update changes the recorded answers and every file rendered from them."""
    new_remote = tmp_path / "other-remote"
    update(
        old_project,
        mlflow_tracking_uri="http://mlflow.example.com:5000",
        dvc_remote_url=str(new_remote),
        description="Predict churn before renewal.",
    )

    answers = yaml.safe_load((old_project / ANSWERS).read_text())
    assert answers["mlflow_tracking_uri"] == "http://mlflow.example.com:5000"
    assert answers["dvc_remote_url"] == str(new_remote)
    params = yaml.safe_load((old_project / "params.yaml").read_text())
    assert params["mlflow"]["tracking_uri"] == "http://mlflow.example.com:5000"
    assert f"url = {new_remote}" in (old_project / ".dvc/config").read_text()
    assert 'description = "Predict churn before renewal."' in (old_project / "pyproject.toml").read_text()
    assert answers["project_slug"] == "customer-churn"  # answers not given keep their stored value
    assert conflicts(old_project) == {}


def test_newest_tag_is_the_working_tree(template_clone: TemplateClone) -> None:
    """The clone's newest tag is the highest version, so a plain `copier update` goes to the working tree."""
    tags = run(["git", "tag", "--list"], cwd=template_clone.path).split()
    assert max(tags, key=lambda tag: Version(tag)) == template_clone.newest


TEAM_NOTE = "# The retention team's change.\n"


@pytest.mark.slow
def test_a_team_project_from_0_3_0_keeps_its_edits_and_passes_its_tests(
    template_clone: TemplateClone, remote: Path, tmp_path: Path
) -> None:
    """0.3.0 carried the platform in the project; the update to the runtime keeps a team's edits of params, a stage,
    the server, an overlay and a workflow, and the project's tests pass on the runtime it now installs."""
    project = copy_release(template_clone, template_clone.tag(Version("0.3.0")), tmp_path / "project", remote)
    package = yaml.safe_load((project / ANSWERS).read_text())["package_name"]
    params = project / "params.yaml"
    params.write_text(params.read_text().replace("  test_size: 0.2\n", "  test_size: 0.25\n"))
    edited = {
        f"src/{package}/stages/train.py": None,
        "deploy/overlays/prod/kustomization.yaml": None,
        ".github/workflows/ci.yml": None,
    }
    for path in edited:
        (project / path).write_text((project / path).read_text() + TEAM_NOTE)
    server = project / f"src/{package}/serving/server.py"
    server.write_text(server.read_text() + TEAM_NOTE)
    server_edit = server.read_text()
    commit(project, "The team's edits")

    update(project)

    assert conflicts(project) == {}
    assert yaml.safe_load(params.read_text())["featurize"]["test_size"] == 0.25
    for path in edited:
        assert (project / path).read_text().endswith(TEAM_NOTE), path
    # The server is the runtime's now: the edit is kept beside where it was, pointed at the serving hook.
    assert not server.exists()
    assert (project / f"src/{package}/serving/server.py.orig").read_text() == server_edit
    # The project installs the runtime of the release (from the template repository it was copied from) and its
    # own tests pass on it.
    out = run(["make", "test"], cwd=project, timeout=1800)
    assert " passed" in out and "failed" not in out, out[-3000:]
