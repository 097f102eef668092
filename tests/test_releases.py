"""Releases: CHANGELOG headings are PEP 440 versions whose commits exist in order, with notes and migrations."""

from __future__ import annotations

import re
import subprocess

import yaml

from .conftest import REPO_ROOT
from .releases import changelog_releases, migration_versions, release_commit, working_tree_version

CHANGELOG = (REPO_ROOT / "CHANGELOG.md").read_text(encoding="utf-8")


def git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True)


def test_changelog_lists_releases_newest_first() -> None:
    """Every `## [...]` heading but Unreleased is a dated PEP 440 release, newest first, none twice."""
    headings = re.findall(r"^## \[([^\]]+)\]", CHANGELOG, flags=re.M)
    releases = changelog_releases()
    assert [h for h in headings if h != "Unreleased"] == [str(v) for v in releases]
    assert releases == sorted(set(releases), reverse=True)
    assert all(not v.is_prerelease and not v.is_devrelease and not v.local for v in releases)


def test_each_release_commit_is_in_history_in_order() -> None:
    """Each release maps to its own commit, and each is an ancestor of the next (tags never move back)."""
    commits = [release_commit(v) for v in sorted(changelog_releases())]
    assert len(set(commits)) == len(commits), "two releases share one commit: add each heading in its own commit"
    for older, newer in zip(commits, commits[1:], strict=False):
        assert git("merge-base", "--is-ancestor", older, newer).returncode == 0, (older, newer)


def test_each_release_commit_has_its_changelog_section() -> None:
    """At its own commit, CHANGELOG.md carries the release's section, which is what the release workflow publishes."""
    for version in changelog_releases():
        text = git("show", f"{release_commit(version)}:CHANGELOG.md").stdout
        section = re.search(rf"^## \[{re.escape(str(version))}\][^\n]*\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
        assert section and section.group(1).strip(), f"{version}: empty CHANGELOG section at its release commit"


def test_migrations_belong_to_releases() -> None:
    """A migration applies at a released version or at the next one; its script exists in hooks/."""
    latest = max(changelog_releases())
    upcoming = working_tree_version()
    for version in migration_versions():
        assert version in changelog_releases() or version == upcoming > latest, version
    config = yaml.safe_load((REPO_ROOT / "copier.yml").read_text())
    for migration in config["_migrations"]:
        script = re.search(r"hooks/[\w.-]+\.py", " ".join(migration["command"]))
        assert script and (REPO_ROOT / script.group(0)).is_file(), migration
