"""The load of the serving benchmark: in-process timings, and a closed-loop generator of C kept-alive HTTP/1.1
connections over raw sockets, each sending a pre-encoded request as soon as the previous answer is in; with the
CPU and memory of the server's processes and of the generator itself."""

from __future__ import annotations

import contextlib
import os
import re
import resource
import selectors
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


def timings(call: Callable[[], Any], seconds: float, warmup: int = 20) -> list[float]:
    """Latencies of `call` repeated for about `seconds`, after a warm-up."""
    for _ in range(warmup):
        call()
    samples: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(float(np.percentile(samples, 50)) * 1000, 3),
        "p99_ms": round(float(np.percentile(samples, 99)) * 1000, 3),
        "calls": len(samples),
    }


@dataclass
class Connection:
    sock: socket.socket
    buffer: bytearray = field(default_factory=bytearray)
    expected: int | None = None  # header plus Content-Length bytes, once the header is in
    status: int = 0
    started: float = 0.0


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def header_facts(head: bytes) -> tuple[int, int | None]:
    """Status code and Content-Length of a response header (None when it has none, e.g. chunked)."""
    status = int(head[9:12])
    match = re.search(rb"\r\ncontent-length:[ \t]*(\d+)", head, re.IGNORECASE)
    return status, int(match.group(1)) if match else None


def process_family(pid: int) -> dict[int, float] | None:
    """Each process in the family of `pid` (it and all its descendants still alive) with its user plus system
    CPU seconds (Linux /proc), else None."""
    tick = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}
    try:
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            with contextlib.suppress(OSError):
                # Fields after the command name (which may hold spaces): state, ppid, ... utime (14th), stime (15th).
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                stats[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    except OSError:
        return None
    if pid not in stats:
        return None
    family, grew = {pid}, True
    while grew:
        grew = False
        for child, (parent, _) in stats.items():
            if parent in family and child not in family:
                family.add(child)
                grew = True
    return {member: stats[member][1] for member in family}


def process_cpu_seconds(pid: int) -> float | None:
    """CPU time of a process and all its descendants still alive, else None."""
    family = process_family(pid)
    return sum(family.values()) if family is not None else None


def process_memory_mib(pid: int) -> dict[str, Any] | None:
    """Resident memory of a server: the whole family now, the peak of each process (VmHWM), the parent's now."""

    def field(member: int, name: str) -> float:
        with contextlib.suppress(OSError, IndexError, ValueError):
            status = Path(f"/proc/{member}/status").read_text()
            return int(status.split(f"{name}:")[1].split()[0]) / 1024
        return 0.0

    family = process_family(pid)
    if family is None:
        return None
    return {
        "total_resident": round(sum(field(member, "VmRSS") for member in family)),
        "parent_resident": round(field(pid, "VmRSS")),
        "peak_per_process": sorted((round(field(member, "VmHWM")) for member in family), reverse=True),
    }


def machine_cpu_seconds() -> float | None:
    """CPU time every process on the machine has used (Linux /proc/stat), else None."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle and waiting for I/O
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def client_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def load(port: int, path: str, body: bytes, connections: int, seconds: float, warmup: float, server_pid: int) -> dict:
    """Closed loop: `connections` kept-alive connections, each POSTing `body` again as soon as its answer is in.

    Requests answered during the `seconds` after the warm-up are counted; an
    answer other than 200, or a connection the server closed, is an error (the
    connection is opened again). No new request starts after the window.
    """
    request = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    selector = selectors.DefaultSelector()
    latencies: list[float] = []
    errors = 0
    first_error = ""
    opened = time.perf_counter()
    window_start, window_end = opened + warmup, opened + warmup + seconds
    measuring = False
    cpu_start = server_start = 0.0
    machine_start: float | None = None
    in_flight = 0

    def send(conn: Connection) -> None:
        nonlocal in_flight
        conn.started = time.perf_counter()
        conn.sock.sendall(request)
        in_flight += 1

    def reopen(conn: Connection) -> None:
        selector.unregister(conn.sock)
        conn.sock.close()
        conn.sock, conn.expected = connect(port), None
        conn.buffer.clear()
        selector.register(conn.sock, selectors.EVENT_READ, conn)

    for _ in range(connections):
        conn = Connection(connect(port))
        selector.register(conn.sock, selectors.EVENT_READ, conn)
        send(conn)
    try:
        while True:
            now = time.perf_counter()
            if not measuring and now >= window_start:
                measuring = True
                latencies.clear()
                errors, first_error = 0, ""
                cpu_start, server_start = client_cpu_seconds(), process_cpu_seconds(server_pid) or 0.0
                machine_start = machine_cpu_seconds()
            if now >= window_end and in_flight == 0:
                break
            events = selector.select(timeout=30)
            if not events:
                raise RuntimeError(f"no answer within 30 s ({in_flight} request(s) in flight)")
            for key, _ in events:
                conn = key.data
                chunk = conn.sock.recv(262144)
                done = time.perf_counter()
                if not chunk:  # the server closed the connection before answering
                    in_flight -= 1
                    errors += 1
                    first_error = first_error or "the server closed a connection before answering"
                    reopen(conn)
                    if done < window_end:
                        send(conn)
                    continue
                conn.buffer += chunk
                if conn.expected is None:
                    end = conn.buffer.find(b"\r\n\r\n")
                    if end < 0:
                        continue
                    conn.status, length = header_facts(bytes(conn.buffer[:end]))
                    if length is None:
                        raise RuntimeError("the server answered without Content-Length; this load generator needs it")
                    conn.expected = end + 4 + length
                if len(conn.buffer) < conn.expected:
                    continue
                in_flight -= 1
                if conn.status == 200:
                    latencies.append(done - conn.started)
                else:
                    errors += 1
                    first_error = first_error or f"{conn.status}: {bytes(conn.buffer[: conn.expected])[-300:]!r}"
                del conn.buffer[: conn.expected]
                conn.expected = None
                if done < window_end:
                    send(conn)
    finally:
        for key in list(selector.get_map().values()):
            key.fileobj.close()
        selector.close()
    elapsed = time.perf_counter() - window_start
    client_cpu = client_cpu_seconds() - cpu_start
    server_cpu = process_cpu_seconds(server_pid)
    machine_cpu = machine_cpu_seconds()
    server_used = server_cpu - server_start if server_cpu is not None else None
    result: dict[str, Any] = {
        "p50_ms": round(float(np.percentile(latencies, 50)) * 1000, 3) if latencies else None,
        "p99_ms": round(float(np.percentile(latencies, 99)) * 1000, 3) if latencies else None,
        "rps": round(len(latencies) / elapsed, 1),
        "requests": len(latencies),
        "errors": errors,
        # CPU cores used on average during the window (1.0: one core busy all the time).
        "client_cpu_cores": round(client_cpu / elapsed, 2),
        "server_cpu_cores": round(server_used / elapsed, 2) if server_used is not None else None,
    }
    if machine_cpu is not None and machine_start is not None and server_used is not None:
        # What the rest of the machine used meanwhile: CPU the server could not have.
        result["other_cpu_cores"] = round(max(0.0, machine_cpu - machine_start - client_cpu - server_used) / elapsed, 2)
    if first_error:
        result["first_error"] = first_error
    return result


# --- servers ------------------------------------------------------------------
