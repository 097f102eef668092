"""The fleet command: versions of many projects, and updates that never push nor touch a dirty tree."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO_ROOT, run
from .releases import TemplateClone, changelog_releases
from .test_update import commit, copy_release

OLDEST = f"v{min(changelog_releases())}"


def fleet(*args: str, cwd: Path) -> tuple[int, str, str]:
    done = subprocess.run(
        [sys.executable, "-m", "fleet", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin", "HOME": str(cwd)},
    )
    return done.returncode, done.stdout, done.stderr


def make_projects(template_clone: TemplateClone, tmp_path: Path) -> dict[str, str]:
    """Old and clean, old and dirty, old with a conflicting edit, current, and an old one reachable only by URL."""
    remote = tmp_path / "dvc-remote"
    old = copy_release(template_clone, OLDEST, tmp_path / "old", remote)
    dirty = copy_release(template_clone, OLDEST, tmp_path / "dirty", remote)
    (dirty / "params.yaml").write_text((dirty / "params.yaml").read_text() + "# work in progress\n")
    clash = copy_release(template_clone, OLDEST, tmp_path / "clash", remote)
    makefile = clash / "Makefile"
    makefile.write_text(makefile.read_text().replace("lint: setup ## Lint", "lint: setup ## Our lint", 1))
    commit(clash, "Own wording")
    current = copy_release(template_clone, template_clone.newest, tmp_path / "current", remote)
    served = copy_release(template_clone, OLDEST, tmp_path / "served", remote)
    bare = tmp_path / "served.git"
    run(["git", "clone", "--quiet", "--bare", str(served), str(bare)], cwd=tmp_path)
    return {
        "old": str(old),
        "dirty": str(dirty),
        "clash": str(clash),
        "current": str(current),
        "url": f"file://{bare}",
    }


@pytest.fixture(scope="module")
def projects(template_clone: TemplateClone, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The fleet for the tests that only read it."""
    return make_projects(template_clone, tmp_path_factory.mktemp("fleet"))


def by_project(stdout: str) -> dict[str, dict]:
    return {row["project"]: row for row in json.loads(stdout)}


def test_report_versions_without_changing_anything(
    projects: dict[str, str], template_clone: TemplateClone, tmp_path: Path
) -> None:
    """Without --update: each project's version, the newest release, and whether it is behind; no file changes."""
    code, out, err = fleet("--json", "--workdir", str(tmp_path / "work"), *projects.values(), cwd=tmp_path)
    assert code == 0, err
    rows = by_project(out)
    for name in ("old", "dirty", "clash", "url"):
        row = rows[projects[name]]
        assert (row["version"], row["newest"], row["status"]) == (OLDEST, template_clone.newest, "update-available")
    assert rows[projects["current"]]["status"] == "up-to-date"
    assert run(["git", "status", "--porcelain"], cwd=Path(projects["old"])) == ""


def test_update_reports_updated_conflicted_dirty(template_clone: TemplateClone, tmp_path: Path) -> None:
    """--update: clean projects updated, the clash reported with its file, the dirty one left as it was."""
    projects = make_projects(template_clone, tmp_path)
    dirty_before = Path(projects["dirty"], "params.yaml").read_text()
    bare = Path(projects["url"].removeprefix("file://"))
    refs_before = run(["git", "show-ref"], cwd=bare)

    code, out, err = fleet("--update", "--json", "--workdir", str(tmp_path / "work"), *projects.values(), cwd=tmp_path)

    assert code == 0, err
    rows = by_project(out)
    assert rows[projects["old"]]["status"] == "updated"
    assert rows[projects["url"]]["status"] == "updated"
    assert rows[projects["clash"]]["status"] == "conflicted"
    assert rows[projects["clash"]]["conflicts"] == ["Makefile"]
    assert rows[projects["dirty"]]["status"] == "dirty" and "commit or stash" in rows[projects["dirty"]]["message"]
    assert rows[projects["current"]]["status"] == "up-to-date"
    assert Path(projects["dirty"], "params.yaml").read_text() == dirty_before
    # Updated, but neither committed nor pushed: the work is left for review.
    clone = Path(rows[projects["url"]]["path"])
    assert template_clone.newest in (clone / ".copier-answers.yml").read_text()
    assert run(["git", "status", "--porcelain"], cwd=clone)
    assert run(["git", "show-ref"], cwd=bare) == refs_before


def test_table_and_failures(projects: dict[str, str], tmp_path: Path) -> None:
    """The default output is a table; a missing folder or a project without answers fails, named, exit 1."""
    plain = tmp_path / "plain"
    plain.mkdir()
    run(["git", "init", "--quiet"], cwd=plain)
    code, out, _ = fleet(projects["current"], str(tmp_path / "missing"), str(plain), cwd=tmp_path)
    assert code == 1
    header, *rows = out.splitlines()
    assert header.split() == ["project", "version", "newest", "status", "details"]
    assert "up-to-date" in rows[0]
    assert "failed" in rows[1] and "no such folder" in rows[1]
    assert "failed" in rows[2] and ".copier-answers.yml" in rows[2]


def test_targets_from_a_file(projects: dict[str, str], tmp_path: Path) -> None:
    """@FILE lists targets one per line, for fleets too long for a command line."""
    listing = tmp_path / "projects.txt"
    listing.write_text(f"{projects['old']}\n{projects['current']}\n")
    code, out, err = fleet("--json", f"@{listing}", cwd=tmp_path)
    assert code == 0, err
    assert [row["status"] for row in json.loads(out)] == ["update-available", "up-to-date"]
