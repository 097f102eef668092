"""The documentation site: built strictly from docs/ and a real run, published by a least-privilege workflow."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from .conftest import REPO_ROOT, generate
from .test_workflows import actionlint, interpolating_run_steps, unpinned

RUNTIME_SOURCE = REPO_ROOT / "runtime" / "src" / "mlops_runtime"
PROJECT_SOURCE = REPO_ROOT / "template" / "src" / "{{package_name}}"
RUN = REPO_ROOT / "build" / "docs-run"
BIN = Path(sys.executable).parent
DOCS_WORKFLOW = REPO_ROOT / ".github" / "workflows" / "docs.yml"


def test_api_reference_lists_modules_that_exist() -> None:
    """Every module the API reference documents is a module of the generated package (stages) or of the runtime."""
    modules = yaml.safe_load((REPO_ROOT / "docs_site" / "api.yml").read_text())["modules"]
    assert modules
    missing = [
        name
        for name in modules
        if not (
            (PROJECT_SOURCE if name.startswith("stages.") else RUNTIME_SOURCE) / f"{name.replace('.', '/')}.py"
        ).is_file()
    ]
    assert missing == []


def test_docs_workflow_is_pinned_least_privilege_and_lint_clean() -> None:
    """The Pages workflow: actionlint and zizmor find nothing, actions pinned, one permission per job."""
    text = DOCS_WORKFLOW.read_text()
    assert unpinned(text) == []
    assert actionlint(DOCS_WORKFLOW) == []
    zizmor = shutil.which("zizmor", path=os.path.dirname(sys.executable))
    done = subprocess.run([zizmor, "--offline", "--no-progress", str(DOCS_WORKFLOW)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    flow = yaml.safe_load(text)
    assert flow["permissions"] == {}
    assert flow[True] == {"push": {"tags": ["v*"]}}  # YAML 1.1 reads the key `on` as a boolean
    assert interpolating_run_steps(flow) == []
    assert {name: job["permissions"] for name, job in flow["jobs"].items()} == {
        "build": {"contents": "read"},
        "publish": {"contents": "write"},
    }
    checkouts = [s for job in flow["jobs"].values() for s in job["steps"] if "actions/checkout@" in s.get("uses", "")]
    assert checkouts and all(s["with"]["persist-credentials"] is False for s in checkouts)


def test_generated_project_has_its_site_with_lean_setup(tmp_path: Path) -> None:
    """A project gets mkdocs.yml, its hooks and `make docs`; the site's tools are an extra that setup skips."""
    project = generate(tmp_path / "project")
    config = (project / "mkdocs.yml").read_text()
    assert "strict: true" in config and "docs/hooks.py" in config
    assert (project / "docs" / "hooks.py").is_file()
    makefile = (project / "Makefile").read_text()
    assert "\ndocs: setup" in makefile and "--extra docs" in makefile
    setup_line = next(line for line in makefile.splitlines() if "sync --extra dev" in line and "run" not in line)
    assert "docs" not in setup_line
    extras = (project / "pyproject.toml").read_text().split("[project.optional-dependencies]")[1]
    assert "docs = [" in extras and "mkdocs-material" in extras


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def served(folder: Path):
    """The built site on localhost, as any static web server would serve it."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).close()
                break
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.terminate()
        server.wait(timeout=10)


def build_site(site: Path, config: Path = REPO_ROOT / "mkdocs.yml") -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "mkdocs"), "build", "--strict", "--config-file", str(config), "--site-dir", str(site)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example run (cached in build/docs-run while the template is unchanged), then a strict build."""
    done = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "docs_run.py")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    site = tmp_path_factory.mktemp("site") / "site"
    built = build_site(site)
    assert built.returncode == 0, built.stderr[-5000:]
    return site


@pytest.mark.slow
def test_every_example_comes_from_the_run(site: Path) -> None:
    """The run ran each command to success, the project's own `make docs` included; its outputs are on the site."""
    record = json.loads((RUN / "run.json").read_text())
    commands = [c["command"] for c in record["commands"]]
    # The drift check breaches on purpose (the traffic's shifted half): exit code 6, report written.
    codes = {c["command"]: c["exit_code"] for c in record["commands"]}
    assert [code for command, code in codes.items() if "monitor drift" in command] == [6], codes
    assert all(code == 0 for command, code in codes.items() if "monitor drift" not in command), codes
    for expected in ("make all", "make promote ENV=dev", "make serve", "make docs"):
        assert any(expected in c for c in commands), (expected, commands)
    assert (RUN / "customer-churn" / "site" / "reports" / "index.html").is_file()
    promotion = (site / "run" / "promotion" / "index.html").read_text()
    first_line = (RUN / "promote-dev.md").read_text().strip().splitlines()[0].lstrip("# ")
    assert first_line and first_line in promotion
    assert (site / "run" / "drift-report" / "report.html").read_bytes() == (
        RUN / "customer-churn" / "reports" / "monitoring" / "drift.html"
    ).read_bytes()


@pytest.mark.slow
def test_strict_build_fails_on_a_broken_link(site: Path, tmp_path: Path) -> None:
    """A page linking to a page that does not exist stops the build, naming the link."""
    work = REPO_ROOT / "build" / f"docs-broken-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    try:
        shutil.copytree(REPO_ROOT / "docs", work / "docs")
        with (work / "docs" / "index.md").open("a") as page:
            page.write("\nSee [the missing page](missing-page.md).\n")
        config = yaml.safe_load((REPO_ROOT / "mkdocs.yml").read_text())
        config["docs_dir"] = "docs"
        config["hooks"] = [str(REPO_ROOT / "docs_site" / "hooks.py")]
        python = config["plugins"][1]["mkdocstrings"]["handlers"]["python"]
        python["paths"] = [str(RUN / "customer-churn" / "src")]
        (work / "mkdocs.yml").write_text(yaml.safe_dump(config))
        done = build_site(tmp_path / "site", work / "mkdocs.yml")
        assert done.returncode != 0
        assert "missing-page.md" in done.stderr
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.mark.slow
def test_site_in_headless_chromium(site: Path, tmp_path: Path) -> None:
    """Home, lifecycle and API pages render with navigation; search finds a command; the drift figure loads."""
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is needed: apt-get install chromium (.ci/run does)"
    assert (REPO_ROOT / "node_modules" / "playwright-core").is_dir(), "run make setup (npm ci)"
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with served(site) as base:
        done = subprocess.run(
            ["node", str(REPO_ROOT / "tests" / "browser_site.mjs"), base, str(shots), chromium, "run-local"],
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert done.returncode == 0, done.stderr[-4000:]
    found = json.loads(done.stdout)
    for name, heading in [("home", "MLOps GitOps"), ("lifecycle", "The lifecycle"), ("api", "command line")]:
        page = found[name]
        assert page["status"] == 200 and heading in page["h1"], page
        assert {"Start a project", "The lifecycle", "Promote", "Monitor", "Reference"} <= set(page["tabs"]), page
        assert page["sidebar"], page
    assert any("mlops_runtime.cli" in name for name in found["api"]["objects"]), found["api"]
    assert any("run-local" in result for result in found["search"]["results"][:3]), found["search"]
    figures = found["drift"]["figures"]
    assert figures and all(f["complete"] and f["width"] > 100 and f["height"] > 100 for f in figures), figures
    assert found["failed_requests"] == []
    assert sorted(p.name for p in shots.iterdir()) == [
        "api.png", "drift-report.png", "drift.png", "home.png", "lifecycle.png", "search.png"
    ]  # fmt: skip
