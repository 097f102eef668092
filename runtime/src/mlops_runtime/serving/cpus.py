"""How many CPUs the server may use: the container's CPU limit under cgroup v2 or v1, else the CPUs it may run on.

A pod's CPU limit is a CFS quota, not a smaller CPU set: the process still sees every
core of the node. A 1-CPU pod on a 64-core node that counted cores would start 64
workers of about 370 MiB each and be killed at its memory limit.
"""

from __future__ import annotations

import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
# cgroup v1 mounts the CPU controller as cpu/ (often a link to cpu,cpuacct/, which some hosts mount alone).
V1_CPU_DIRS = ("cpu", "cpu,cpuacct")


def cpu_limit(root: Path = CGROUP_ROOT) -> int | None:
    """Whole CPUs of the container's CPU limit (at least 1), or None when it has none.

    cgroup v2: `cpu.max` holds "<quota> <period>" or "max <period>". cgroup v1:
    `cpu/cpu.cfs_quota_us` (-1 for no limit) over `cpu/cpu.cfs_period_us`.
    """
    try:
        quota, period = (root / "cpu.max").read_text().split()
        return None if quota == "max" else whole_cpus(int(quota), int(period))
    except (OSError, ValueError):
        pass
    for name in V1_CPU_DIRS:
        try:
            quota_us = int((root / name / "cpu.cfs_quota_us").read_text())
            period_us = int((root / name / "cpu.cfs_period_us").read_text())
        except (OSError, ValueError):
            continue
        return None if quota_us < 0 else whole_cpus(quota_us, period_us)
    return None


def whole_cpus(quota: int, period: int) -> int:
    """The quota in whole CPUs, rounded down (a 1.5-CPU limit runs one busy worker at full speed), at least 1."""
    return max(1, quota // period) if period > 0 else 1


def available_cpus(root: Path = CGROUP_ROOT) -> int:
    """The CPU limit when there is one, never more than the CPUs the process may run on."""
    cores = len(os.sched_getaffinity(0))
    limit = cpu_limit(root)
    return cores if limit is None else min(limit, cores)
