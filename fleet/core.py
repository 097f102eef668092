"""Per-project work of the fleet command: read the answers, find the newest release, run `copier update`."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from packaging.version import InvalidVersion, Version

ANSWERS_FILE = ".copier-answers.yml"
# What `git clone` accepts as a remote: scheme URLs, scp-like addresses, and copier's gh:/gl: shorthands.
REMOTE = re.compile(r"^([a-z][a-z0-9+.-]*://|[\w.-]+@[\w.-]+:|gh:|gl:)")
SHORTHANDS = {"gh:": "https://github.com/", "gl:": "https://gitlab.com/"}


@dataclass
class Result:
    """One project's row of the report."""

    project: str
    path: str = ""
    template: str = ""
    version: str = ""
    newest: str = ""
    status: str = ""  # up-to-date, update-available, dirty, updated, conflicted, failed
    conflicts: list[str] = field(default_factory=list)
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def git(cwd: Path | None, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"git {args[0]} failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def is_remote(target: str) -> bool:
    return bool(REMOTE.match(target))


def expand(url: str) -> str:
    for short, prefix in SHORTHANDS.items():
        if url.startswith(short):
            return prefix + url.removeprefix(short) + ("" if url.endswith(".git") else ".git")
    return url


def checkout(target: str, workdir: Path) -> Path:
    """The local checkout of `target`: the folder itself, or a clone of the URL in `workdir` (fetched if present)."""
    if not is_remote(target):
        path = Path(target).expanduser().resolve()
        if not path.is_dir():
            raise ValueError(f"{target}: no such folder (give a project checkout or a git URL)")
        return path
    name = re.sub(r"(\.git)?/?$", "", target).rsplit("/", 1)[-1].rsplit(":", 1)[-1] or "project"
    path = workdir / name
    if path.exists():
        # A clone from an earlier run: bring it up to date only if nothing local would be lost.
        if not dirty(path):
            git(path, "pull", "--quiet", "--ff-only")
    else:
        workdir.mkdir(parents=True, exist_ok=True)
        git(None, "clone", "--quiet", expand(target), str(path))
    return path


def dirty(path: Path) -> bool:
    return bool(git(path, "status", "--porcelain").strip())


def parse_version(ref: str) -> Version | None:
    """A PEP 440 version of a recorded `_commit`: a tag, or `tag-N-gHASH` (N commits after it) as tag.postN."""
    match = re.fullmatch(r"(?P<tag>.+)-(?P<distance>\d+)-g[0-9a-f]+", ref)
    try:
        return Version(f"{match['tag']}.post{match['distance']}") if match else Version(ref)
    except InvalidVersion:
        return None


_latest_cache: dict[str, str] = {}


def newest_release(src: str) -> str:
    """The highest PEP 440 tag of the template repository, pre-releases aside (as `copier update` picks)."""
    if src not in _latest_cache:
        listing = git(None, "ls-remote", "--tags", "--refs", "--", expand(src))
        tags = [line.split("refs/tags/", 1)[1] for line in listing.splitlines() if "refs/tags/" in line]
        releases = [(v, tag) for tag in tags if (v := parse_version(tag)) is not None and not v.is_prerelease]
        if not releases:
            raise RuntimeError(f"the template {src} has no release tags")
        _latest_cache[src] = max(releases)[1]
    return _latest_cache[src]


def conflicted_files(path: Path) -> list[str]:
    """Files copier left unmerged, and rejected hunks it could not place."""
    unmerged = git(path, "diff", "--name-only", "--diff-filter=U").split()
    rejected = git(path, "ls-files", "--others", "--exclude-standard", "--", "*.rej").split()
    return sorted(set(unmerged) | set(rejected))


def update(path: Path, ref: str) -> list[str]:
    """`copier update` to `ref` with the stored answers; the files left in conflict."""
    # A child process keeps copier's and the migrations' output out of the report (and its JSON).
    done = subprocess.run(
        [sys.executable, "-m", "copier", "update", "--trust", "--defaults", "--quiet", "--conflict", "inline",
         "--vcs-ref", ref],
        cwd=path,
        capture_output=True,
        text=True,
    )  # fmt: skip
    if done.returncode:
        lines = (done.stderr.strip() or done.stdout.strip() or f"copier exited with {done.returncode}").splitlines()
        raise RuntimeError(f"copier update failed: {lines[-1]}")
    return conflicted_files(path)


def inspect(target: str, workdir: Path, run_update: bool) -> Result:
    """Report one project; with `run_update`, update it when a newer release exists and its tree is clean."""
    result = Result(project=target)
    try:
        path = checkout(target, workdir)
        result.path = str(path)
        answers_file = path / ANSWERS_FILE
        if not answers_file.is_file():
            raise ValueError(f"no {ANSWERS_FILE}: not generated by copier (or the answers file was renamed)")
        answers = yaml.safe_load(answers_file.read_text(encoding="utf-8")) or {}
        result.template, result.version = str(answers.get("_src_path", "")), str(answers.get("_commit", ""))
        if not result.template:
            raise ValueError(f"{ANSWERS_FILE} has no _src_path: run `copier update` once by hand to record it")
        result.newest = newest_release(result.template)
        current, newest = parse_version(result.version), parse_version(result.newest)
        behind = current is None or (newest is not None and newest > current)
        result.status = "update-available" if behind else "up-to-date"
        if not (run_update and behind):
            return result
        if dirty(path):
            result.status = "dirty"
            result.message = "uncommitted changes: commit or stash them, then run again (nothing was changed)"
            return result
        result.conflicts = update(path, result.newest)
        result.status = "conflicted" if result.conflicts else "updated"
        result.message = "review the changes, commit and push them yourself"
    except Exception as exc:  # one project's failure must not stop the report of the others
        result.status = "failed"
        result.message = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    return result
