"""A benchmark's measured part in a fresh interpreter, which reports its own peak resident memory; and the median
time of a call."""

from __future__ import annotations

import json
import statistics
import time

# Each check runs in a fresh interpreter that imports what `monitor drift` imports, so its peak
# resident memory is what the drift job's container needs. The peak is the process's own high-water
# mark (VmHWM): ru_maxrss would also count the parent's memory at the time it started the child.
# Every child script starts with this: its own peak resident memory.
PEAK = """
import resource
def peak_mib():
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
"""


def run_child(script: str, *args: str) -> dict[str, object]:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", PEAK + script, *args], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def median_seconds(call, repeats: int = 3) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)
