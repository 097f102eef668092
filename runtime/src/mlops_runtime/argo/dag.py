"""The pipeline graph as DVC sees it: stages, their commands, paths and upstream stages.

dvc.yaml (with params.yaml interpolated) is the single definition of the
pipeline; the Argo workflow is derived from what this module returns, so the
two cannot drift.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Step:
    """One node of the pipeline: a dvc.yaml stage, or a `.dvc` pointer to pull."""

    name: str
    command: tuple[str, ...]
    deps: tuple[str, ...]
    outs: tuple[str, ...]
    upstream: tuple[str, ...]


def slug(text: str) -> str:
    """`text` as a name Argo and Kubernetes accept: lower case, each run of other characters one `-`, none at ends."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def task_name(address: str) -> str:
    """A Kubernetes-safe name for a DVC stage address (`data/raw.dvc` -> `data-raw`)."""
    return slug(address.removesuffix(".dvc"))


def pipeline_steps(root: Path) -> list[Step]:
    """Every stage DVC would run for `dvc repro`, in a dependency-respecting order."""
    import networkx as nx
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        graph = repo.index.graph  # edges point from a stage to the stages it depends on

        def relative(item: object) -> str:
            return os.path.relpath(item.fs_path, repo.root_dir)

        steps = []
        for stage in reversed(list(nx.topological_sort(graph))):
            address = stage.addressing
            # A `.dvc` pointer (raw data) has no command: its step fetches the data.
            command = ("dvc", "pull", address) if address.endswith(".dvc") else tuple(shlex.split(stage.cmd))
            steps.append(
                Step(
                    name=task_name(address),
                    command=command,
                    deps=tuple(relative(dep) for dep in stage.deps if not isinstance(dep, ParamsDependency)),
                    outs=tuple(relative(out) for out in stage.outs),
                    upstream=tuple(sorted(task_name(up.addressing) for up in graph.successors(stage))),
                )
            )
    return steps
