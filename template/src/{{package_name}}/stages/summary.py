"""Summary: what the last local run produced, where to look at it, and what to commit."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

from mlops_runtime.card import problems
from mlops_runtime.config import Params
from mlops_runtime.registry import tracking_uri


def _read(params: Params, name: str) -> object | None:
    path = params.path(name)
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def registered_version(params: Params) -> str:
    """The version behind the candidate alias, or why there is none."""
    from mlops_runtime.registry import alias_version

    name, alias = params.registry.model_name, params.registry.alias
    version = alias_version(params, alias)
    if version is None:
        return f"none with alias '{alias}' yet (run `make register`)"
    return f"{name} version {version.version} (alias '{alias}', run {version.run_id})"


def git_files(root: Path) -> list[str]:
    """What the lifecycle writes that belongs in git, wherever it exists.

    DVC keeps cached outputs in its cache and remote and git-ignores them through the
    .gitignore it writes beside them; the rest is git's: dvc.lock, the `.dvc` pointers,
    those .gitignore files, the outputs dvc.yaml marks `cache: false` (metrics, reports,
    plots, model info), the Argo YAML `make render` writes beside its module, and uv.lock.
    """
    from dvc.repo import Repo

    files = {"dvc.lock", "uv.lock", *(p.relative_to(root).as_posix() for p in root.glob("pipelines/*.yaml"))}
    with Repo(str(root)) as repo:
        for stage in repo.index.stages:
            if stage.addressing.endswith(".dvc"):
                files.add(Path(os.path.relpath(stage.path, repo.root_dir)).as_posix())
            for out in stage.outs:
                path = Path(os.path.relpath(out.fs_path, repo.root_dir))
                files.add((path.parent / ".gitignore" if out.use_cache else path).as_posix())
    return sorted(files)


def to_commit(root: Path) -> list[str] | None:
    """The lifecycle's files git sees as new, changed or deleted; None outside a git repository."""
    status = ["git", "--literal-pathspecs", "status", "--porcelain", "-z", "--untracked-files=all"]
    try:
        done = subprocess.run([*status, "--", *git_files(root)], cwd=root, capture_output=True, text=True, check=False)
    except FileNotFoundError:  # no git at all (the project image)
        return None
    if done.returncode != 0:
        return None
    entries, paths = iter(done.stdout.split("\0")), []
    for entry in entries:
        if entry:
            paths.append(entry[3:])
            if entry[0] in "RC":  # a rename or copy: the next field is its origin
                next(entries, None)
    return sorted(paths)


def main(params: Params) -> str:
    metrics = _read(params, "metrics")
    gate = _read(params, "gate")
    uri = tracking_uri(params)
    lines = ["", f"  data           {params.ingest.source} (DVC pointer data/raw.dvc)"]
    if isinstance(metrics, dict):
        shown = ", ".join(f"{k} {v:.3f}" for k, v in metrics.items() if k in params.evaluate.success_criteria)
        lines.append(f"  held-out       {shown}  [{params.paths.metrics}]")
    if isinstance(gate, dict):
        verdict = "passed" if gate["passed"] else "failed: " + "; ".join(gate["failures"])
        lines.append(f"  gate           {verdict}  [{params.paths.gate}]")
    card = _read(params, "card")
    if isinstance(card, dict):
        missing = problems(card)
        state = "complete" if not missing else f"INCOMPLETE ({len(missing)} missing: promotion refuses it)"
        lines.append(f"  model card     {state}  [{params.paths.card_markdown}]")
    lines += [
        f"  bias report    per-slice metrics  [{params.paths.slices}]",
        f"  plots          {params.paths.confusion}, {params.paths.roc}  (make plots)",
        f"  model          {params.paths.model}",
        f"  registry       {registered_version(params)}",
        f"  MLflow store   {uri}  (browse: mlflow ui --backend-store-uri {uri})",
        "  next           make serve (V2 API on localhost), make validate (Kubernetes manifests),",
        "                 make promote ENV=dev VERSION=<n> (pin a version for dev, by pull request)",
    ]
    pending = to_commit(params.root)
    if pending:
        lines.append(f"  commit these   git add {shlex.join(pending)}")
    elif pending is not None:
        lines.append("  commit these   nothing: git has every file the run wrote")
    return "\n".join(lines)
