"""Several server workers under a small parent process: `serve` with more than one worker execs into this module.

The process that resolved the model has MLflow, pandas and scikit-learn loaded (about
200 MiB) and would keep them while it only watches the workers. Replacing it with
this module (same process id, so a container's signals still reach it) leaves a
parent that holds uvicorn alone; each worker builds its app from what the
environment says (serving.server.worker_app). Import nothing heavy here.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from typing import Any

from .starting import UntilServing, unblock

# Keep-alive longer than the usual 60 s idle timeout of load balancers, so they close connections first.
UVICORN_OPTIONS: dict[str, Any] = dict(log_level="warning", access_log=False, timeout_keep_alive=75)
WORKER_APP = f"{__package__}.worker:app"


def command(host: str, port: int, workers: int) -> list[str]:
    """The command line that runs this module as the parent of `workers` processes."""
    module = f"{__package__}.supervisor"
    return [sys.executable, "-m", module, "--host", host, "--port", str(port), "--workers", str(workers)]


def run(host: str, port: int, workers: int) -> None:
    """Serve with `workers` processes until stopped; their metrics are summed through files in one folder
    (prometheus_client's multiprocess mode), removed when the server stops."""
    import uvicorn

    with tempfile.TemporaryDirectory(prefix="model-server-metrics-") as metrics:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or metrics
        uvicorn.run(WORKER_APP, factory=True, workers=workers, host=host, port=port, **UVICORN_OPTIONS)
    name, version = os.environ.get("MODEL_NAME", "the model"), os.environ.get("MODEL_VERSION", "?")
    print(f"stopped serving {name} version {version}", flush=True)


def main(argv: list[str] | None = None) -> None:
    # A stop signal held since `serve` exec'd this module ends it now; uvicorn's handlers take over later.
    UntilServing()
    unblock()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, required=True)
    args = parser.parse_args(argv)
    run(args.host, args.port, args.workers)


if __name__ == "__main__":
    main()
