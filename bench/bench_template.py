"""Benchmark the template: generation, install, and `make all` on a generated project.

Prints JSON: the median of several runs of each, next to a baseline measured in
the same run, and whether the targets (generation < 2 s, `make all` < 60 s on a
2-core machine) are met.

    python bench/bench_template.py [--runs 3] [--pip-baseline]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
STAGES = ["ingest", "validate", "featurize", "train", "evaluate", "register"]
TARGETS_S = {"generation": 2.0, "make_all": 60.0}


def timed(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return elapsed


def copier_copy(dst: Path, *extra: str) -> float:
    cmd = [sys.executable, "-m", "copier", "copy", "--quiet", "--trust", "--defaults", "--vcs-ref", "HEAD"]
    cmd += ["--data", f"dvc_remote_url={dst}-remote", *extra, str(REPO_ROOT), str(dst)]
    return timed(cmd, cwd=dst.parent)


def summary(samples: list[float]) -> dict[str, object]:
    return {"median_s": round(statistics.median(samples), 3), "samples_s": [round(s, 3) for s in samples]}


def bench(work: Path, runs: int, pip_baseline: bool) -> dict[str, object]:
    generation, render_only, install, make_all, bare_stages = [], [], [], [], []
    for i in range(runs):
        render_only.append(copier_copy(work / f"render-{i}", "--skip-tasks"))
        generation.append(copier_copy(work / f"gen-{i}"))

        project = work / f"gen-{i}"
        install.append(timed(["make", "setup"], cwd=project))
        make_all.append(timed(["make", "all"], cwd=project))

        # Baseline: the same stage commands, run directly, without make and DVC.
        bare = work / f"bare-{i}"
        copier_copy(bare)
        timed(["make", "setup"], cwd=bare)
        python = str(bare / ".venv/bin/python")
        start = time.perf_counter()
        for stage in STAGES:
            timed([python, "-m", "customer_churn", stage], cwd=bare)
        bare_stages.append(time.perf_counter() - start)

    results: dict[str, object] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "runs": runs,
        "generation": {**summary(generation), "target_s": TARGETS_S["generation"]},
        "generation_baseline_render_only": summary(render_only),
        "install_uv_warm_cache": summary(install),
        "make_all_after_install": {**summary(make_all), "target_s": TARGETS_S["make_all"]},
        "make_all_baseline_bare_stage_commands": summary(bare_stages),
    }
    results["ratios"] = {
        "generation_vs_render_only": round(statistics.median(generation) / statistics.median(render_only), 2),
        "make_all_vs_bare_stages": round(statistics.median(make_all) / statistics.median(bare_stages), 2),
    }
    results["meets_targets"] = {
        "generation": statistics.median(generation) < TARGETS_S["generation"],
        "make_all": statistics.median(make_all) < TARGETS_S["make_all"],
    }
    if pip_baseline:
        project = work / "pip"
        copier_copy(project)
        no_uv = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if not (Path(p) / "uv").exists())
        pip_s = timed(["make", "setup"], cwd=project, env={"PATH": no_uv})
        results["install_pip_fallback"] = {"seconds": round(pip_s, 3)}
        results["ratios"]["install_pip_vs_uv"] = round(pip_s / statistics.median(install), 2)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pip-baseline", action="store_true", help="also time the pip fallback install once")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="template-bench-"))
    try:
        print(json.dumps(bench(work, args.runs, args.pip_baseline), indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
