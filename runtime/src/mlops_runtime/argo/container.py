"""`pipeline run-local --image`: each task of the rendered workflow run in the project image by `docker run`.

As the pod runs it: the container's command (the entrypoint) and args, its env, the pod's user and
group, the container's security context and CPU and memory limits. The image's own files stay as
built; the folders that hold the task's declared paths (inputs, outputs, output parameters) are
folders of the task's workspace mounted at their place, so that inputs are where the task reads them
and what it writes is collected and handed on as run-local does without an image. A local DVC remote
and a local SQLite tracking store are mounted at the same path, so the host reads the runs afterwards.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ParamsError
from .expressions import substitute
from .workspace import Pod

DOCKER = "docker"
ENGINE_TIMEOUT = 60  # seconds for the engine to answer `docker image inspect`
STORE = "mlflow"  # the workdir's folder holding the run's SQLite tracking store and its artifacts
IMAGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}")
# --mount is read as CSV: a comma or quote in a path would change what is mounted.
UNSAFE_PATH = re.compile(r"[,\"'\n\r]")
MEMORY_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def docker(*args: str) -> subprocess.CompletedProcess[str]:
    """The docker CLI (arguments as a list); ParamsError when it is missing or the engine does not answer."""
    if shutil.which(DOCKER) is None:
        raise ParamsError(
            "--image needs the docker CLI, which is not on PATH: install Docker, or drop --image to run the tasks "
            "as processes here"
        )
    try:
        return subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=ENGINE_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise ParamsError(
            f"the Docker engine did not answer in {ENGINE_TIMEOUT} s: start it, or point DOCKER_HOST at one"
        ) from None


def image_user(image: str) -> str:
    """The USER of `image`; ParamsError naming the image when the engine does not have it."""
    if not IMAGE_NAME.fullmatch(image):
        raise ParamsError(f"--image {image!r} is not an image reference (NAME[:TAG] or NAME@DIGEST)")
    done = docker("image", "inspect", "--format", "{{.Config.User}}", "--", image)
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise ParamsError(
            f"--image {image}: the Docker engine has no such image ({why}): build it with "
            f"`make image IMAGE={image}`, or load or pull it first"
        )
    return done.stdout.strip()


def cpus(quantity: object) -> str:
    """A Kubernetes CPU quantity (`500m`, `2`) as docker's --cpus, at most this machine's CPUs (docker's bound)."""
    text = str(quantity)
    try:
        value = float(text[:-1]) / 1000 if text.endswith("m") else float(text)
    except ValueError:
        raise ParamsError(f"resources.limits.cpu {text!r} is not a CPU quantity such as 500m or 2") from None
    return str(min(value, float(os.cpu_count() or 1)))


def memory(quantity: object) -> str:
    """A Kubernetes memory quantity (`1Gi`, `512M`, bytes) as docker's --memory in bytes."""
    text = str(quantity)
    found = re.fullmatch(r"(\d+)(Ki|Mi|Gi|Ti|k|M|G|T)?", text)
    if not found:
        raise ParamsError(f"resources.limits.memory {text!r} is not a memory quantity such as 1Gi or 512Mi")
    return str(int(found[1]) * MEMORY_UNITS.get(found[2] or "", 1))


def local_remotes(root: Path) -> list[str]:
    """The DVC remotes of the project that are folders (absolute or under `~/`), as DVC's own config reads them
    (relative URLs made absolute, the local config merged). `dvc remote list` text is no source: it appends
    "(default)" to a URL and does not quote paths."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo(str(root)) as repo:
            remotes = repo.config["remote"]
    except DvcException as exc:
        raise ParamsError(f"cannot read the DVC remotes of {root}: {exc}") from None
    urls = [str(settings.get("url", "")) for settings in remotes.values()]
    return [url for url in urls if url.startswith(("/", "~/"))]


def give(path: Path, user: tuple[int, int] | None) -> None:
    """Make `path` (a folder the container writes into) writable by the container's user.

    As root the folder changes owner, as an fsGroup volume does; otherwise its folders are opened to all."""
    for folder, _, names in os.walk(path):
        for item in [folder, *(os.path.join(folder, name) for name in names)]:
            if os.path.islink(item):
                continue
            if user is not None and os.geteuid() == 0:
                os.chown(item, *user)
            elif os.path.isdir(item):
                os.chmod(item, 0o777)


class Engine:
    """One run's container settings: the image, the pod's security context, what every task mounts."""

    def __init__(self, image: str, spec: dict[str, Any]) -> None:
        self.image = image
        self.image_user = image_user(image)
        self.pod_security = spec.get("securityContext") or {}
        self.prefix = f"run-local-{uuid.uuid4().hex[:12]}"
        self.shared: list[tuple[Path, str, bool]] = []  # (host folder, container path, read-only) for every task

    def user(self, template: dict[str, Any]) -> tuple[int, int] | None:
        """(UID, GID) from runAsUser/runAsGroup (the container's over the pod's), else the image's numeric USER."""
        context = {**self.pod_security, **((template.get("container") or {}).get("securityContext") or {})}
        uid = context.get("runAsUser", self.image_user.split(":")[0] or None)
        if uid is None or not str(uid).isdigit():
            return None
        gid = context.get("runAsGroup", self.image_user.split(":")[1] if ":" in self.image_user else uid)
        return int(uid), int(gid) if str(gid).isdigit() else int(uid)

    def share_remotes(self, urls: Sequence[str]) -> None:
        """Mount each local DVC remote read-only where DVC in the container looks: `~/` is the image user's home."""
        home = None
        for url in urls:
            host = Path(url).expanduser()
            if not host.is_dir():
                continue  # the task fails as it would, naming the remote DVC cannot read
            target = url
            if url.startswith("~/"):
                if home is None:
                    asked = ["run", "--rm", *self.user_option({}), "--entrypoint=printenv", "--", self.image, "HOME"]
                    home = docker(*asked).stdout.strip()
                target = (home or "/root").rstrip("/") + url[1:]
            self.shared.append((host, target, True))

    def user_option(self, template: dict[str, Any]) -> list[str]:
        user = self.user(template)
        return [] if user is None else [f"--user={user[0]}:{user[1]}"]

    def store(self, folder: Path) -> Path:
        """The run's tracking store folder in the workdir, mounted read-write in every task."""
        store = folder / STORE
        store.mkdir()
        self.shared.append((store, str(store), False))
        return store

    def name(self, task: str) -> str:
        return f"{self.prefix}-{task}"

    def mounts(self, pod: Pod, declared: Sequence[tuple[str, str]]) -> list[tuple[Path, str]]:
        """(workspace folder, container path): the top folder under the working directory of each declared path."""
        tops: dict[str, str] = {}
        for what, path in declared:
            relative = pod.relative(path, what)
            top = relative.split("/")[0]
            if top == "." or ("/" not in relative and not (pod.workspace / top).exists()):
                raise ParamsError(
                    f"{what}: {path} is not inside a folder of the working directory {pod.working_dir}; "
                    "run-local --image mounts the folder a declared path is in: declare it inside a folder"
                )
            tops.setdefault(top, what)
        mounts = []
        for top in tops:
            host = pod.workspace / top
            if not host.exists():
                host.mkdir(parents=True)
            mounts.append((host, f"{pod.working_dir.rstrip('/')}/{top}"))
        return mounts

    def command(
        self,
        task: str,
        template: dict[str, Any],
        pod: Pod,
        command: Sequence[str],
        scope: dict[str, Any],
        declared: Sequence[tuple[str, str]],
    ) -> list[str]:
        """The `docker run` arguments of one task, its workspace folders made writable by the container's user."""
        where = f"task {task}"
        container = template.get("container") or {}
        context = container.get("securityContext") or {}
        user = self.user(template)
        options = ["run", "--rm", f"--name={self.name(task)}", "--network=host", f"--workdir={pod.working_dir}"]
        options += self.user_option(template)
        if "fsGroup" in self.pod_security:
            options.append(f"--group-add={int(self.pod_security['fsGroup'])}")
        options += [f"--cap-drop={cap}" for cap in (context.get("capabilities") or {}).get("drop") or []]
        if context.get("allowPrivilegeEscalation") is False:
            options.append("--security-opt=no-new-privileges")
        if context.get("readOnlyRootFilesystem"):
            options += ["--read-only", "--tmpfs=/tmp:rw,mode=1777"]
        limits = (container.get("resources") or {}).get("limits") or {}
        if "cpu" in limits:
            options.append(f"--cpus={cpus(limits['cpu'])}")
        if "memory" in limits:
            options.append(f"--memory={memory(limits['memory'])}")
        for var in container.get("env") or []:
            if "value" in var:
                options.append(f"--env={var['name']}={substitute(str(var['value']), scope, f'{where} env')}")
            elif var["name"] in os.environ:  # a secret's variable: docker takes it from its own environment
                options.append(f"--env={var['name']}")
        mounts = list(self.shared)
        for host, target in self.mounts(pod, declared):
            give(host, user)
            mounts.append((host, target, False))
        for host, target, read_only in mounts:
            if UNSAFE_PATH.search(str(host) + target):
                raise ParamsError(f"{where}: cannot mount {host} at {target}: a comma or quote in a path; rename it")
            options.append(f"--mount=type=bind,source={host},target={target}" + (",readonly" if read_only else ""))
        if command and container.get("command"):
            options.append(f"--entrypoint={command[0]}")
            command = command[1:]
        return [DOCKER, *options, "--", self.image, *command]

    def remove(self, task: str) -> None:
        """Remove the task's container (after a stop: the CLI may be gone while the container still runs)."""
        subprocess.run([DOCKER, "rm", "--force", self.name(task)], capture_output=True, check=False)
