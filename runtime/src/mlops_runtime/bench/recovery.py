"""Worker recovery benchmark: `kill -9` of one server worker under load, and what the clients saw (JSON).

Run `make bench-recovery` after `make all`. The server runs as `make serve` runs it, with
two workers (--workers). Client threads send one-row V2 requests on kept-alive connections,
reconnecting after an error, as a load balancer's pool does. After a measured stretch with
both workers, the worker holding most client connections is killed with SIGKILL (as the
kernel's OOM killer does); the supervisor starts a replacement, which loads the model again. The JSON says how many
requests failed, when the last failure happened, when the replacement took over, and the
throughput before, while one worker served alone, and after (ratios against the before
stretch of the same run).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..config import PARAMS_FILE, load_params
from ..files import read_table
from ..serving.model import resolve_model
from .servers import ours, running, v2_body

ANNOUNCED = re.compile(r"serve \(worker (\d+)\): predicting with")


@dataclass(frozen=True)
class Answer:
    sent: float
    done: float
    status: int | str


def client(port: int, path: str, body: bytes, answers: list[Answer], stop: threading.Event) -> None:
    """Requests one after another on one kept-alive connection; a new connection after an error."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    while not stop.is_set():
        sent = time.monotonic()
        try:
            connection.request("POST", path, body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            answers.append(Answer(sent, time.monotonic(), response.status))
        except (OSError, http.client.HTTPException) as exc:
            answers.append(Answer(sent, time.monotonic(), type(exc).__name__))
            connection.close()
    connection.close()


def announced_workers(log: Path) -> list[int]:
    """The worker processes that printed they loaded the model, in order."""
    return [int(pid) for pid in ANNOUNCED.findall(log.read_text(errors="replace"))]


def held_connections(pid: int, port: int) -> int:
    """Established client connections to `port` that process `pid` holds (Linux /proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":  # 01: ESTABLISHED
                inodes.add(fields[9])
    held = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            link = os.readlink(fd)
        except OSError:
            continue
        held += link.startswith("socket:[") and link[8:-1] in inodes
    return held


def wait_for(condition, timeout: float, what: str) -> float:
    """Poll `condition` until true; the time it became true."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(0.01)
    return time.monotonic()


def rate(answers: list[Answer], start: float, end: float) -> float | None:
    """Answers with 200 per second that were sent in [start, end)."""
    if end <= start:
        return None
    return round(sum(1 for a in answers if a.status == 200 and start <= a.sent < end) / (end - start), 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path(PARAMS_FILE))
    parser.add_argument("--workers", type=int, default=2, help="server processes (default: %(default)s)")
    parser.add_argument("--connections", type=int, default=4, help="client connections (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=3.0, help="measured stretch before and after the kill")
    args = parser.parse_args(argv)
    if args.workers < 2:
        parser.error(f"--workers {args.workers}: the bench kills one of several workers; give 2 or more")
    load_average = os.getloadavg()
    os.environ["OMP_NUM_THREADS"] = "1"
    params = load_params(args.params)
    served = resolve_model(params, env=None, model_uri=None)
    row = read_table(params.path("test"), produced_by="featurize")[params.data.features].head(1)
    server = ours(args.params, served.name, args.workers)
    body = v2_body(row)
    answers: list[Answer] = []
    stop = threading.Event()

    with tempfile.TemporaryDirectory(prefix="bench-recovery-") as scratch:
        log = Path(scratch) / "server.log"
        with running(server, log):
            wait_for(lambda: len(announced_workers(log)) >= args.workers, 300, "every worker loading the model")
            first = announced_workers(log)
            threads = [
                threading.Thread(target=client, args=(server.port, server.infer_path, body, answers, stop))
                for _ in range(args.connections)
            ]
            for thread in threads:
                thread.start()
            try:
                time.sleep(1.0)  # warm-up
                before = time.monotonic()
                time.sleep(args.seconds)
                # The worker holding most client connections: the kill a client notices most.
                held = {pid: held_connections(pid, server.port) for pid in first}
                victim = max(held, key=held.get)
                killed = time.monotonic()
                os.kill(victim, signal.SIGKILL)
                replaced = wait_for(
                    lambda: len(announced_workers(log)) > len(first), 300, "a replacement worker loading the model"
                )
                replacement = announced_workers(log)[len(first)]
                time.sleep(args.seconds)
                after_end = time.monotonic()
            finally:
                stop.set()
                for thread in threads:
                    thread.join(timeout=60)

    # Cut off by the kill or after it: a request in flight on the killed worker was sent before it.
    failures = [a for a in answers if a.status != 200 and a.done >= killed]
    kinds: dict[str, int] = {}
    for failure in failures:
        kinds[str(failure.status)] = kinds.get(str(failure.status), 0) + 1
    before_rate = rate(answers, before, killed)
    alone_rate = rate(answers, killed, replaced)
    after_rate = rate(answers, replaced, after_end)
    report = {
        "what": (
            f"SIGKILL of one of {args.workers} workers under {args.connections} kept-alive client connections "
            "(one-row V2 requests, reconnecting after an error)"
        ),
        "model": f"{served.name} version {served.version}",
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(v, 2) for v in load_average],
        "client_connections_per_worker_at_kill": held,
        "killed_worker": victim,
        "replacement_worker": replacement,
        "worker_replaced": replacement not in first,
        "requests_failed_after_kill": len(failures),
        "failure_kinds": kinds,
        "requests_answered_200_after_kill": sum(1 for a in answers if a.status == 200 and a.sent >= killed),
        # From the kill to the end of the last failed request: every request after it got a 200.
        "seconds_until_every_request_succeeds": round(max((a.done for a in failures), default=killed) - killed, 3),
        "seconds_until_replacement_loaded_model": round(replaced - killed, 3),
        "requests_per_second": {
            "before_kill": before_rate,
            "one_worker_until_replaced": alone_rate,
            "after_replacement": after_rate,
        },
        "ratios_to_before": {
            "one_worker_until_replaced": round(alone_rate / before_rate, 2) if alone_rate and before_rate else None,
            "after_replacement": round(after_rate / before_rate, 2) if after_rate and before_rate else None,
        },
    }
    print(json.dumps(report, indent=2))
    return 0 if report["worker_replaced"] else 1


if __name__ == "__main__":
    sys.exit(main())
