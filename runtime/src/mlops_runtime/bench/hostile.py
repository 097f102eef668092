"""Hostile bodies for the serving benchmark: text as clients send it, values and bodies far over the limits; and
the peak memory each costs a server's processes next to a normal body."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from .load import process_family
from .servers import Server, post, running, v2_body

HOSTILE_ROWS = 1000
LONG_VALUE_CHARS = 500_000
BODY_BYTES = 2_000_000
HOSTILE_REPEATS = 8
# Ways clients write a category that training saw in lower case; the model normalises them all.
RAW_TEXT: tuple[Callable[[str], str], ...] = (str.title, str.upper, lambda t: f"  {t} ", lambda t: f"{t}\x00")
LIFTED = {"serve": {"max_value_chars": 10**8, "max_request_chars": 10**8}}


def raw_text(frame: pd.DataFrame, categorical: list[str]) -> pd.DataFrame:
    """The rows with their categories as clients may send them: other case, surrounding spaces, NULs."""
    out = frame.copy()
    for name in categorical:
        values = frame[name].tolist()
        out[name] = [None if pd.isna(v) else RAW_TEXT[i % len(RAW_TEXT)](v) for i, v in enumerate(values)]
    return out


def hostile_bodies(frame: pd.DataFrame, column: str) -> dict[str, bytes]:
    """A normal body of HOSTILE_ROWS rows; the same with one LONG_VALUE_CHARS-character value in `column`
    (under the body size limit); and with one value long enough to make a BODY_BYTES body."""

    def with_value(chars: int) -> bytes:
        changed = frame.astype({column: object})
        changed.loc[0, column] = "x" * chars
        return v2_body(changed)

    base = len(with_value(0))
    return {
        "normal": v2_body(frame),
        f"one_{LONG_VALUE_CHARS}_char_value": with_value(LONG_VALUE_CHARS),
        f"{BODY_BYTES // 1_000_000}_mb_body": with_value(BODY_BYTES - base),
    }


def peaks_mib(pid: int) -> dict[int, float]:
    """The peak resident memory (VmHWM) of each process of the server's family, by process id."""
    peaks = {}
    for member in process_family(pid) or {}:
        with contextlib.suppress(OSError, IndexError, ValueError):
            status = Path(f"/proc/{member}/status").read_text()
            peaks[member] = round(int(status.split("VmHWM:")[1].split()[0]) / 1024, 1)
    return peaks


def hostile_memory(server: Server, bodies: dict[str, bytes], folder: Path, label: str) -> dict[str, Any]:
    """Each body posted HOSTILE_REPEATS times, each on a new connection (so that every worker gets some),
    the normal one first; the statuses answered and every process's peak memory after each body."""
    report: dict[str, Any] = {}
    with running(server, folder / f"{server.name}-{label}.log") as process:
        for name, body in bodies.items():
            print(f"bench: {server.name} {label} {name}", file=sys.stderr, flush=True)
            statuses: dict[str, int] = {}
            said = ""
            for _ in range(HOSTILE_REPEATS):
                status, answer = post(server.port, server.infer_path, body)
                statuses[str(status)] = statuses.get(str(status), 0) + 1
                if status != 200:
                    said = said or answer[:200].decode(errors="replace")
            peaks = peaks_mib(process.pid)
            report[name] = {
                "body_bytes": len(body),
                "statuses": statuses,
                "peak_mib_per_process": sorted(peaks.values(), reverse=True),
                **({"answer": said} if said else {}),
            }
    normal = max(report["normal"]["peak_mib_per_process"], default=0.0)
    report["peak_growth_over_normal_mib"] = {
        name: round(max(entry["peak_mib_per_process"], default=0.0) - normal, 1)
        for name, entry in report.items()
        if name != "normal"
    }
    return report


# --- comparison ---------------------------------------------------------------
