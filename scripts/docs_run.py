"""Generate a default project, run its lifecycle, and keep what the tools printed for the documentation site.

    python scripts/docs_run.py [--out build/docs-run] [--force]

The site shows only what this run produced: the promotion pull request body, the
drift report of served traffic, the command line's help. The run is cached in
--out with a key of the template's files: a second docs build with the template
unchanged reuses it (seconds), a changed template reruns it (minutes).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "customer-churn"
PACKAGE = "customer_churn"
# What the generated project is made of: a change to any of these reruns the example run.
SOURCES = ["template", "copier.yml", "includes", "hooks", "scripts/docs_run.py"]
# Subcommands whose --help the command-line reference shows.
HELP_COMMANDS = [
    [],
    ["pipeline", "render"],
    ["pipeline", "submit"],
    ["pipeline", "run-local"],
    ["promote"],
    ["serve"],
    ["monitor", "drift"],
    ["monitor", "outliers"],
    ["manifests"],
]


def template_key() -> str:
    """sha256 of every file the project is generated from, as they are on disk (uncommitted edits included)."""
    digest = hashlib.sha256()
    for source in SOURCES:
        path = ROOT / source
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            if "__pycache__" in file.parts:
                continue
            digest.update(file.relative_to(ROOT).as_posix().encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


def run(command: list[str], cwd: Path, log: list[dict], env: dict[str, str] | None = None, ok: tuple = (0,)) -> str:
    """Run one command of the example, record it (as a user would type it) with its exit code, return its stdout.

    `ok`: the exit codes this step of the example is meant to end with (any other stops the run).
    """
    started = time.monotonic()
    done = subprocess.run(command, cwd=cwd, env=env or project_env(), capture_output=True, text=True)
    shown = " ".join(command).replace(str(cwd) + "/", "").replace(str(ROOT), "<template>")
    log.append({"command": shown, "exit_code": done.returncode, "seconds": round(time.monotonic() - started, 1)})
    if done.returncode not in ok:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        raise SystemExit(f"docs run: `{shown}` failed with exit code {done.returncode} (in {cwd})")
    # A command that ends non-zero on purpose says why on stderr.
    return done.stdout + (done.stderr if done.returncode else "")


def project_env() -> dict[str, str]:
    """The caller's environment without its virtualenv: the project's Makefile uses its own .venv."""
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "MAKEFLAGS", "MAKELEVEL", "MFLAGS"}}
    env["UV_PYTHON_DOWNLOADS"] = "never"
    # uv and copier come with the template's tools, beside this interpreter.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(port: int, server: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"docs run: `make serve` stopped with exit code {server.returncode}")
        with contextlib.suppress(OSError), urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready") as answer:
            if answer.status == 200:
                return
        time.sleep(0.5)
    raise SystemExit(f"docs run: the server on port {port} was not ready within {seconds:.0f} s")


def send_traffic(port: int, batches: int = 6, rows: int = 100) -> dict:
    """Post the held-out rows to the served model, then the same rows with longer tenures and higher charges.

    Runs in the project's environment (it imports the project's package): the second half is the
    drift the report is meant to show, made of real rows shifted the way a price change would.
    """
    import pandas as pd
    from customer_churn.stages.train import split_xy
    from mlops_runtime.config import load_params
    from mlops_runtime.serving.protocol import encode_request

    params = load_params()
    features, _ = split_xy(pd.read_parquet(params.paths.test), params)
    shifted = features.copy()
    shifted["monthly_charges"] = shifted["monthly_charges"] * 1.6
    shifted["tenure_months"] = (shifted["tenure_months"] + 24).clip(upper=120)
    url = f"http://127.0.0.1:{port}/v2/models/{params.registry.model_name}/infer"
    sent = {"held_out_rows": 0, "shifted_rows": 0, "answers": {}}
    for index in range(batches):
        kind, frame = ("held_out_rows", features) if index < batches // 2 else ("shifted_rows", shifted)
        batch = frame.sample(n=min(rows, len(frame)), random_state=index)
        body = json.dumps(encode_request(batch)).encode()
        request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            sent["answers"][str(answer.status)] = sent["answers"].get(str(answer.status), 0) + 1
        sent[kind] += len(batch)
    return sent


def serve_and_monitor(project: Path, out: Path, log: list[dict]) -> None:
    """`make serve`, traffic, stop, `make monitor` against the candidate (no model is pinned in prod yet)."""
    port = free_port()
    env = project_env() | {"PORT": str(port)}
    with (out / "serve.log").open("w") as serve_log:
        server = subprocess.Popen(
            ["make", "serve"], cwd=project, env=env, stdout=serve_log, stderr=subprocess.STDOUT, start_new_session=True
        )
    started = time.monotonic()
    try:
        wait_ready(port, server)
        traffic = run(
            [str(project / ".venv/bin/python"), str(Path(__file__).resolve()), "traffic", "--port", str(port)],
            project,
            log,
        )
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, 15)
        server.wait(timeout=60)
    log.insert(
        len(log) - 1,
        {"command": f"PORT={port} make serve", "exit_code": 0, "seconds": round(time.monotonic() - started, 1)},
    )
    (out / "traffic.json").write_text(traffic)
    # The shifted half of the traffic drifts on purpose: `monitor` says so with exit code 6 (report written).
    # This is the command `make monitor REFERENCE=challenger` runs, called directly: make would turn 6 into 2.
    # --current as params.yaml's serve.log_inputs, spelled relative so the report names no machine path.
    current = ["--current", "data/inference/inputs"]
    monitor = [".venv/bin/python", "-m", PACKAGE, "monitor", "drift", "--reference", "challenger", *current]
    verdict = run(monitor, project, log, ok=(6,))
    (out / "monitor.txt").write_text(verdict.strip().splitlines()[-1].replace(f"{project}/", "") + "\n")
    reports = project / "reports/monitoring"
    shutil.copytree(reports, out / "monitoring", dirs_exist_ok=True)


def promote(project: Path, out: Path, log: list[dict]) -> None:
    """The pull request body a promotion to dev opens, and the metrics diff against it."""
    run(["make", "promote", "ENV=dev", "VERSION=1", f"BODY={out / 'promote-dev.md'}"], project, log)
    (out / "pin-dev.diff").write_text(run(["git", "diff", "--", "deploy/overlays/dev/model.yaml"], project, log))
    run(["make", "promote-diff", "ENV=dev", f"BODY={out / 'promote-diff-dev.md'}"], project, log)


def cli_help(project: Path, out: Path, log: list[dict]) -> None:
    python = str(project / ".venv/bin/python")
    helps = {}
    for words in HELP_COMMANDS:
        done = subprocess.run([python, "-m", PACKAGE, *words, "--help"], cwd=project, capture_output=True, text=True)
        if done.returncode == 0:
            helps[" ".join(words)] = done.stdout
    (out / "cli-help.json").write_text(json.dumps(helps, indent=1))


def generate(out: Path, log: list[dict]) -> Path:
    project = out / PROJECT
    copier = [sys.executable, "-m", "copier", "copy", "--trust", "--defaults", "--vcs-ref", "HEAD", "--quiet"]
    run([*copier, "--data", f"dvc_remote_url={out / 'remote'}", str(ROOT), str(project)], out, log)
    run(["make", "all"], project, log)
    return project


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", nargs="?", default="run", choices=["run", "key", "traffic"])
    parser.add_argument("--out", type=Path, default=ROOT / "build/docs-run")
    parser.add_argument("--force", action="store_true", help="rerun even if the cached run matches the template")
    parser.add_argument("--port", type=int, help="traffic: the port `make serve` listens on")
    args = parser.parse_args(argv)
    if args.action == "traffic":
        print(json.dumps(send_traffic(args.port)))
        return 0
    key = template_key()
    if args.action == "key":
        print(key)
        return 0
    out = args.out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    # Two builds at once (parallel tests, make docs in two shells) share one run: the second waits, then reuses it.
    with (out.parent / f".{out.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return produce(out, key, args.force)


def produce(out: Path, key: str, force: bool) -> int:
    record = out / "run.json"
    if not force and record.is_file() and json.loads(record.read_text()).get("key") == key:
        print(f"docs run: {record} matches the template; reusing it")
        return 0
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    log: list[dict] = []
    started = datetime.now(timezone.utc)
    project = generate(out, log)
    promote(project, out, log)
    serve_and_monitor(project, out, log)
    cli_help(project, out, log)
    # The project's own site, from the reports this run left: it must build strictly too.
    run(["make", "docs"], project, log)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--", *SOURCES], cwd=ROOT, capture_output=True, text=True)
    record.write_text(
        json.dumps(
            {
                "key": key,
                "template_commit": commit.stdout.strip() or "unknown",
                "uncommitted_changes": bool(dirty.stdout.strip()),
                "started": started.isoformat(timespec="seconds"),
                "minutes": round((datetime.now(timezone.utc) - started).total_seconds() / 60, 1),
                "python": sys.version.split()[0],
                "commands": log,
            },
            indent=1,
        )
    )
    print(f"docs run: written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
