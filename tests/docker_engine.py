"""A Docker engine for the image tests: a `dockerd` started and stopped here, and base images that stand in
for the Dockerfile's defaults where those cannot be pulled.

The engine is Debian's `docker.io` (`.ci/run` installs it); no systemd is needed. It runs on its own socket
and data folder, without a bridge or firewall rules, so it touches nothing else on the machine; containers
use the host's network. An engine that already answers (DOCKER_HOST, or the default socket) is used as it is.

Stand-ins, built only when `docker pull` of the default fails:
- the Python base: Debian 12 (bookworm) with python3 and git, bootstrapped by `mmdebstrap`. Its Python is 3.11, so
  only `python_version: "3.11"` (the default answer) can be built from it; other versions need their
  default image to be pullable. It carries the host's CA bundle (SSL_CERT_FILE), which builds need to
  reach the package index from machines behind a TLS-inspecting proxy; the project's Dockerfile never does.
- the uv image: the `uv` binary of the uv wheel on PyPI, in the series the Dockerfile's tag names.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# Debian 12's python3 is 3.11: the one Python version the bootstrapped base can give.
DEBIAN_SUITE, DEBIAN_PYTHON = "bookworm", "3.11"


@dataclass(frozen=True)
class Engine:
    """A reachable Docker engine: the environment that points the `docker` client at it."""

    env: dict[str, str]

    def docker(self, *args: str, timeout: float = 1800, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["docker", *args], env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"docker {' '.join(args)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
        return done

    def answers(self) -> bool:
        try:
            return self.docker("version", "--format", "{{.Server.Version}}", timeout=20, check=False).returncode == 0
        except subprocess.TimeoutExpired:
            return False


@contextlib.contextmanager
def docker_engine(folder: Path) -> Iterator[Engine]:
    """An engine for the session: the one already running, else a `dockerd` of our own, stopped at the end."""
    if shutil.which("docker") is None:
        pytest.fail("docker is not on PATH: install Debian's docker.io (.ci/run does)")
    running = Engine(dict(os.environ))
    if running.answers():
        yield running
        return
    dockerd = shutil.which("dockerd")
    if dockerd is None or os.geteuid() != 0:
        pytest.fail("no Docker engine answers and dockerd cannot be started here (it needs root and docker.io)")
    folder.mkdir(parents=True, exist_ok=True)
    socket = folder / "docker.sock"
    command = [
        dockerd,
        f"--data-root={folder / 'data'}",
        f"--exec-root={folder / 'exec'}",
        f"--pidfile={folder / 'dockerd.pid'}",
        f"--host=unix://{socket}",
        # No docker0 bridge, no iptables rules: containers use the host network.
        "--bridge=none",
        "--iptables=false",
        "--ip-masq=false",
    ]
    log = (folder / "dockerd.log").open("wb")
    daemon = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    engine = Engine({**os.environ, "DOCKER_HOST": f"unix://{socket}"})
    try:
        deadline = time.monotonic() + 90
        while not engine.answers():
            if daemon.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"dockerd did not start:\n{(folder / 'dockerd.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield engine
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        log.close()
        unmount_under(folder)
        shutil.rmtree(folder, ignore_errors=True)


def unmount_under(folder: Path) -> None:
    """Detach what dockerd left mounted in its folders (its `default` network namespace stays bound under
    exec/netns after it exits), deepest first: a mount left there makes any later removal of the folder fail
    with EBUSY, pytest's own pruning of old temporary folders included."""
    root = str(folder.resolve())
    mounted = [
        line.split()[4].encode().decode("unicode_escape")
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
    ]
    for point in sorted((p for p in mounted if p == root or p.startswith(root + "/")), key=len, reverse=True):
        subprocess.run(["umount", "--lazy", point], capture_output=True, check=False)


def has_image(engine: Engine, image: str) -> bool:
    return engine.docker("image", "inspect", image, check=False).returncode == 0


def pull_or_none(engine: Engine, image: str) -> str | None:
    """The image itself when the engine has it or can pull it."""
    if has_image(engine, image) or engine.docker("pull", image, timeout=600, check=False).returncode == 0:
        return image
    return None


def python_base(engine: Engine, default: str, python_version: str, work: Path) -> str:
    """The Dockerfile's default Python image, or a Debian stand-in with the host's CA bundle."""
    if pulled := pull_or_none(engine, default):
        return pulled
    if python_version != DEBIAN_PYTHON:
        pytest.fail(f"{default} cannot be pulled, and a Debian {DEBIAN_SUITE} stand-in has Python {DEBIAN_PYTHON}")
    tag = f"standin/python:{DEBIAN_PYTHON}"
    if has_image(engine, tag):
        return tag
    if shutil.which("mmdebstrap") is None:
        pytest.fail(f"{default} cannot be pulled and mmdebstrap is not installed to bootstrap a stand-in")
    rootfs = work / "python-base.tar"
    subprocess.run(
        [
            "mmdebstrap", "--quiet", "--variant=minbase", "--include=python3,ca-certificates,git", DEBIAN_SUITE,
            str(rootfs),
            # The host's bundle: the proxies some machines reach PyPI through sign with a CA only it has.
            f"--customize-hook=upload {HOST_CA_BUNDLE} /etc/ssl/certs/ca-certificates.crt",
        ],
        check=True, capture_output=True, timeout=1800,
    )  # fmt: skip
    engine.docker(
        "import", "--change", f"ENV SSL_CERT_FILE={HOST_CA_BUNDLE}", "--change", 'CMD ["python3"]', str(rootfs), tag
    )
    rootfs.unlink()
    return tag


def uv_image(engine: Engine, default: str, work: Path) -> str:
    """The Dockerfile's default uv image, or a scratch image holding /uv from the uv wheel on PyPI."""
    if pulled := pull_or_none(engine, default):
        return pulled
    series = default.rsplit(":", 1)[1]
    if not re.fullmatch(r"\d+\.\d+", series):
        pytest.fail(f"{default}: expected a MAJOR.MINOR tag to find the uv wheel of the same series")
    tag = f"standin/uv:{series}"
    if has_image(engine, tag):
        return tag
    wheels = work / "uv-wheel"
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "--dest",
         str(wheels), f"uv=={series}.*"],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    with zipfile.ZipFile(next(wheels.glob("uv-*.whl"))) as wheel:
        binary = wheel.read(next(name for name in wheel.namelist() if name.endswith(".data/scripts/uv")))
    archive = work / "uv-image.tar"
    with tarfile.open(archive, "w") as tar:
        entry = tarfile.TarInfo("uv")
        entry.size, entry.mode = len(binary), 0o755
        tar.addfile(entry, io.BytesIO(binary))
    engine.docker("import", str(archive), tag)
    archive.unlink()
    return tag


def dockerfile_defaults(dockerfile: Path) -> dict[str, str]:
    """The default of every ARG the Dockerfile declares before its first FROM (its base images)."""
    head = dockerfile.read_text(encoding="utf-8").split("\nFROM ", 1)[0]
    return dict(re.findall(r"^ARG (\w+)=(\S+)$", head, re.MULTILINE))
