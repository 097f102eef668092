"""The worker count follows the container's CPU limit under cgroup v2 and cgroup v1 (fake cgroup files)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlops_runtime.serving.cpus import available_cpus, cpu_limit

CORES = len(os.sched_getaffinity(0))


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text + "\n")
    return root


@pytest.mark.parametrize(
    ("files", "limit"),
    [
        ({"cpu.max": "100000 100000"}, 1),
        ({"cpu.max": "200000 100000"}, 2),
        ({"cpu.max": "150000 100000"}, 1),
        ({"cpu.max": "50000 100000"}, 1),
        ({"cpu.max": "max 100000"}, None),
        ({"cpu/cpu.cfs_quota_us": "100000", "cpu/cpu.cfs_period_us": "100000"}, 1),
        ({"cpu/cpu.cfs_quota_us": "400000", "cpu/cpu.cfs_period_us": "100000"}, 4),
        ({"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"}, None),
        ({"cpu,cpuacct/cpu.cfs_quota_us": "300000", "cpu,cpuacct/cpu.cfs_period_us": "100000"}, 3),
        ({}, None),
    ],
    ids=["v2-1", "v2-2", "v2-1.5", "v2-half", "v2-none", "v1-1", "v1-4", "v1-none", "v1-cpuacct", "no-cgroup"],
)
def test_cpu_limit_of_cgroup_v2_and_v1(tmp_path: Path, files: dict[str, str], limit: int | None) -> None:
    """The limit in whole CPUs (at least one) from cpu.max or cpu.cfs_quota_us/cpu.cfs_period_us; None without."""
    assert cpu_limit(write(tmp_path, files)) == limit


def test_one_cpu_limit_on_a_many_core_host_means_one_worker(tmp_path: Path) -> None:
    """A 1-CPU limit under cgroup v1 gives one worker, however many cores the host has."""
    root = write(tmp_path, {"cpu/cpu.cfs_quota_us": "100000", "cpu/cpu.cfs_period_us": "100000"})
    assert available_cpus(root) == 1


def test_without_a_limit_the_workers_follow_the_cores(tmp_path: Path) -> None:
    """No limit (or one above the cores the process may use): one worker per core it may use."""
    assert available_cpus(tmp_path) == CORES
    root = write(tmp_path, {"cpu.max": f"{(CORES + 8) * 100000} 100000"})
    assert available_cpus(root) == CORES
