"""Benchmark the project image: its size, a cold build, and a rebuild after a code change.

Generates a default project from the working tree, then builds its Dockerfile with Docker:
- cold: no layer cache (packages still come from the package index);
- after a code change: one line added to a stage module; the dependency layer (`uv sync`
  from uv.lock) must come from the cache, so the rebuild is a fraction of the cold build.
Prints JSON with both times, their ratio, the image size next to its base image's (the
baseline measured in the same run), and whether the dependency layer was reused.

Docker: an engine that answers (DOCKER_HOST), else a `dockerd` of its own (root, Debian's
docker.io). Base images: the Dockerfile's defaults when they can be pulled, else the
stand-ins the image tests bootstrap (tests/docker_engine.py: Debian 12's Python 3.11).

    python bench/bench_image.py
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.conftest import generate as generate_project  # noqa: E402
from tests.conftest import runtime_over_http  # noqa: E402
from tests.docker_engine import Engine, docker_engine, dockerfile_defaults, python_base, uv_image  # noqa: E402


def generate(dst: Path) -> Path:
    """The default project of the working tree, as the template's tests make it (its runtime from a tagged clone)."""
    project = generate_project(dst, tasks=True)
    if not (project / "uv.lock").exists():
        sys.exit("generating the project wrote no uv.lock")
    return project


def build(engine: Engine, root: Path, tag: str, build_args: dict[str, str], *options: str) -> tuple[float, str]:
    """Seconds the build took, and its output."""
    args = [f"--build-arg={name}={value}" for name, value in build_args.items()]
    start = time.perf_counter()
    done = engine.docker("build", "--network=host", *options, *args, "--tag", tag, str(root), timeout=3600)
    return time.perf_counter() - start, done.stdout + done.stderr


def size(engine: Engine, image: str) -> int:
    return int(engine.docker("image", "inspect", "--format", "{{.Size}}", image).stdout.strip())


def dependency_layer_cached(output: str) -> bool:
    """Whether the build's `uv sync` step came from the layer cache (classic builder or BuildKit output)."""
    steps = re.split(r"\n(?=Step \d+/\d+ :|#\d+ \[)", output)
    sync = [step for step in steps if "uv sync" in step]
    return bool(sync) and all("Using cache" in step or "CACHED" in step for step in sync)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-image-") as tmp:
        work = Path(tmp)
        root = generate(work / "churn")
        with docker_engine(work / "engine") as engine:
            defaults = dockerfile_defaults(root / "Dockerfile")
            build_args = {
                "PYTHON_IMAGE": python_base(engine, defaults["PYTHON_IMAGE"], "3.11", work),
                "UV_IMAGE": uv_image(engine, defaults["UV_IMAGE"], work),
                # The runtime from the working tree's clone, as from the template's repository.
                **runtime_over_http(),
            }
            cold, _ = build(engine, root, "bench-image:cold", build_args, "--no-cache")
            package = next(p.name for p in (root / "src").iterdir() if p.is_dir())
            stage = root / "src" / package / "stages" / "train.py"
            stage.write_text(stage.read_text() + "\n# A code change: the dependency layer stays cached.\n")
            rebuild, output = build(engine, root, "bench-image:changed", build_args)
            image_bytes = size(engine, "bench-image:changed")
            base_bytes = size(engine, build_args["PYTHON_IMAGE"])
    print(
        json.dumps(
            {
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load": os.getloadavg()[0]},
                "base_image": build_args["PYTHON_IMAGE"],
                "cold_build_s": round(cold, 1),
                "rebuild_after_code_change_s": round(rebuild, 1),
                "rebuild_over_cold": round(rebuild / cold, 3),
                "dependency_layer_cached": dependency_layer_cached(output),
                "image_mb": round(image_bytes / 1e6),
                "base_image_mb": round(base_bytes / 1e6),
                "image_over_base": round(image_bytes / base_bytes, 2),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
