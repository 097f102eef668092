"""Where a model comes from: the git commit and the DVC hash of its data, and the names its lineage goes by.

At run time this module imports only the standard library and yaml: the template's
update migrations load it as a file of its own, without the package.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    from .config import Params

UNKNOWN = "unknown"
# The registry alias promotion keeps on the version an environment serves (`promote --sync`), and
# which that environment's drift job compares with; deploy/ writes it from the same pattern.
CHAMPION_ALIAS = "champion-{env}"
# The lineage of a model version, defined once: the name MLflow keeps each value under -> the
# annotation (ANNOTATION_PREFIX + name) a pin carries it in, which kustomize copies onto the served
# objects. The MLflow names are tags of the training run and of the registered version, except
# RUN_ID (the version's own run) and TEMPLATE_VERSION (the project's template when it was promoted).
# Registries and pins already store both spellings: rename neither.
COMMIT_TAG = "git_commit"
# "true" when the work tree differed from that commit (lineage_tags): promotion keeps such a model in dev.
DIRTY_TAG = "git_dirty"
RUN_ID = "run_id"
DATA_HASH_TAG = "dvc_data_hash"
TEMPLATE_VERSION = "template_version"
LINEAGE = {
    COMMIT_TAG: "git-commit",
    RUN_ID: "mlflow-run",
    DATA_HASH_TAG: "dvc-data-hash",
    TEMPLATE_VERSION: "template-version",
}
ANNOTATION_PREFIX = "model.mlops/"
# A git commit id as the pipeline records it and image tags carry it (hexadecimal, short or full).
COMMIT_ID = re.compile(r"[0-9a-f]{7,40}")


def is_commit_id(value: str) -> bool:
    return COMMIT_ID.fullmatch(value) is not None


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout.strip()


def git_commit(root: Path) -> str:
    """HEAD of the work tree, or GIT_COMMIT where there is none (a container built from a commit)."""
    return _git(root, "rev-parse", "HEAD") or os.environ.get("GIT_COMMIT") or UNKNOWN


def git_dirty(root: Path, outputs: tuple[str, ...] = ()) -> bool:
    """True when tracked files differ from the commit (the model may not be reproducible from it).

    `outputs` are the pipeline's own results (dvc.lock, reports): DVC rewrites them while
    the pipeline runs, from the commit's inputs, so they do not count.
    """
    excluded = [f":(exclude,literal){path}" for path in outputs]
    status = _git(root, "status", "--porcelain", "--untracked-files=no", "--", ":/", *excluded)
    return bool(status)


def _recorded_hash(entry: dict) -> str:
    return str(entry.get("md5") or entry.get("etag") or entry.get("checksum") or UNKNOWN)


def data_hash(params: Params) -> str:
    """What DVC recorded for the ingest source: its dvc.lock entry, else the `.dvc` pointer of
    the folder holding it (a pod has the pointer, not the lock), else the file's own md5."""
    lock = params.root / "dvc.lock"
    if lock.exists():
        stages = (yaml.safe_load(lock.read_text(encoding="utf-8")) or {}).get("stages", {})
        for dep in stages.get("ingest", {}).get("deps", []):
            if dep.get("path") == params.ingest.source:
                return _recorded_hash(dep)
    for folder in Path(params.ingest.source).parents:
        pointer = params.root / f"{folder}.dvc"
        if folder != Path(".") and pointer.exists():
            outs = (yaml.safe_load(pointer.read_text(encoding="utf-8")) or {}).get("outs", [{}])
            return _recorded_hash(outs[0])
    source = Path(params.source())
    if source.is_file():
        return hashlib.md5(source.read_bytes(), usedforsecurity=False).hexdigest()
    return UNKNOWN


def pipeline_outputs(root: Path) -> tuple[str, ...]:
    """What the pipeline writes: dvc.lock, every output it records and the .gitignore DVC keeps beside
    each (it stages those itself), relative to the project root.

    Read from dvc.lock rather than params.yaml: these are names to leave out of the dirty
    check, not files a stage reads. An unreadable lock leaves only itself out.
    """
    try:
        stages = (yaml.safe_load((root / "dvc.lock").read_text(encoding="utf-8")) or {}).get("stages") or {}
        outs = [str(out["path"]) for stage in stages.values() for out in stage.get("outs") or []]
    except (OSError, yaml.YAMLError, AttributeError, TypeError, KeyError):
        outs = []
    ignores = {(PurePosixPath(out).parent / ".gitignore").as_posix() for out in outs}
    return ("dvc.lock", *outs, *sorted(ignores))


def lineage_tags(params: Params) -> dict[str, str]:
    """Tags recorded on the training run and on the registered model version."""
    return {
        COMMIT_TAG: git_commit(params.root),
        DIRTY_TAG: str(git_dirty(params.root, pipeline_outputs(params.root))).lower(),
        "data_source": params.ingest.source,
        DATA_HASH_TAG: data_hash(params),
    }


def annotation(name: str) -> str:
    """The pin annotation of a lineage value (`git_commit` -> `model.mlops/git-commit`)."""
    return ANNOTATION_PREFIX + LINEAGE[name]


def template_version(params: Params) -> str:
    """The template commit this project was generated or last updated from (.copier-answers.yml)."""
    try:
        answers = yaml.safe_load((params.root / ".copier-answers.yml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return UNKNOWN
    return str(answers.get("_commit") or UNKNOWN)
