"""Monitoring benchmark (prints JSON): the drift check at 1,000,000 and 10,000,000 logged rows x 20 features,
streamed (what `monitor drift` runs) next to the same check in memory, each timed in its own process with its
peak resident memory; KS tests on the numeric columns as an outside baseline; outlier scoring per request
next to prediction alone; `monitor outliers` on 1,000,000 logged rows, streamed and in memory; and the rows
a worker killed with -9 under load loses from the input log, against the bound serve.log_flush_seconds sets.

Run `make bench-monitor` after `make all` (the last parts use the trained model in models/). It writes the
synthetic logs to a temporary folder (about 1.3 GB at 10M rows) and removes them.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp

from ..config import DataContract, Monitor
from ..monitoring.drift import drift
from ..monitoring.reference import build_profile
from .child import median_seconds, run_child
from .monitoring_serving import killed_worker_figures, outlier_figures, serving_figures

NUMERIC, CATEGORICAL = 14, 6


def synthetic(rows: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = {f"n{i}": rng.normal(loc=shift if i == 0 else 0.0, size=rows) for i in range(NUMERIC)}
    data |= {f"c{i}": rng.choice(["a", "b", "c", "d", "e"], size=rows) for i in range(CATEGORICAL)}
    return pd.DataFrame(data)


COLUMNS = {f"n{i}": {"kind": "numeric"} for i in range(NUMERIC)} | {
    f"c{i}": {"kind": "categorical"} for i in range(CATEGORICAL)
}
SETTINGS = dict(
    numeric_threshold=0.15, categorical_threshold=0.15, max_drift_share=0.1,
    outlier_contamination=0.01, max_outlier_share=0.05, reference="champion-prod",
)  # fmt: skip
SIZES = (1_000_000, 10_000_000)
# The last run's figures, in the project: the drift CronJob's memory is checked against them.
RECORD = Path("bench") / "monitoring.json"

CHILD = """
import json, sys, time
from pathlib import Path
import pandas as pd
from mlops_runtime.config import DataContract, Monitor
from mlops_runtime.monitoring import check  # noqa: F401  (the command's imports: MLflow, matplotlib, ...)
from mlops_runtime.monitoring.drift import drift
from mlops_runtime.monitoring.report import html_report
from mlops_runtime.monitoring.streaming import current_stats, drift_from_stats
mode, profile_path, data, columns, settings = sys.argv[1:6]
profile = json.loads(Path(profile_path).read_text())
contract = DataContract(label="y", columns=json.loads(columns))
settings = Monitor(**json.loads(settings))
started = time.perf_counter()
if mode == "streaming":
    stats = current_stats(profile, [data], contract)
    result = drift_from_stats(profile, stats, settings)
    html_report(result, profile, stats, "bench")
else:
    result = drift(profile, pd.read_parquet(data), settings)
seconds = time.perf_counter() - started
print(json.dumps({"s": seconds, "peak_mib": peak_mib(),
                  "drifted": result["drifted"], "drift_share": result["drift_share"],
                  "distances": {k: v["distance"] for k, v in result["features"].items()}}))
"""


def write_logs(path: Path, rows: int, shift: float) -> None:
    """Synthetic logged inputs as the server writes them (zstd Parquet), made a million rows at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    categories = pa.array(["a", "b", "c", "d", "e"])
    for start in range(0, rows, 1_000_000):
        rng = np.random.default_rng(1000 + start)
        size = min(1_000_000, rows - start)
        arrays = {f"n{i}": rng.normal(loc=shift if i == 0 else 0.0, size=size) for i in range(NUMERIC)}
        arrays |= {
            f"c{i}": pa.DictionaryArray.from_arrays(rng.integers(0, 5, size=size, dtype=np.int32), categories)
            for i in range(CATEGORICAL)
        }
        table = pa.table(arrays)
        writer = writer or pq.ParquetWriter(path, table.schema, compression="zstd")
        writer.write_table(table, row_group_size=131_072)
    writer.close()


def run_check(mode: str, profile: Path, data: Path) -> dict[str, object]:
    return run_child(CHILD, mode, str(profile), str(data), json.dumps(COLUMNS), json.dumps(SETTINGS))


def drift_figures() -> dict[str, object]:
    import tempfile

    contract = DataContract(label="y", columns=COLUMNS)
    reference = synthetic(200_000, seed=1)
    profile = build_profile(reference, contract, quantiles=200)
    figures: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="bench-monitor-") as folder:
        profile_path = Path(folder) / "reference_profile.json"
        profile_path.write_text(json.dumps(profile))
        for rows in SIZES:
            data = Path(folder) / f"inputs-{rows}.parquet"
            write_logs(data, rows, shift=0.5)
            streamed, in_memory = run_check("streaming", profile_path, data), run_check("in-memory", profile_path, data)
            gap = max(abs(streamed["distances"][k] - in_memory["distances"][k]) for k in streamed["distances"])
            figures[f"{rows:_}_rows"] = {
                "streaming_s": round(streamed["s"], 2),
                "streaming_peak_mib": round(streamed["peak_mib"]),
                "in_memory_s": round(in_memory["s"], 2),
                "in_memory_peak_mib": round(in_memory["peak_mib"]),
                "ratio_time_streaming_vs_in_memory": round(streamed["s"] / in_memory["s"], 2),
                "ratio_memory_streaming_vs_in_memory": round(streamed["peak_mib"] / in_memory["peak_mib"], 2),
                "same_verdict": streamed["drifted"] == in_memory["drifted"] == ["n0"]
                and streamed["drift_share"] == in_memory["drift_share"],
                "max_distance_gap": round(gap, 5),
            }
            data.unlink()
    current = synthetic(SIZES[0], seed=2, shift=0.5)
    settings = Monitor(**SETTINGS)
    ours = median_seconds(lambda: drift(profile, current, settings), repeats=1)
    ks = median_seconds(lambda: [ks_2samp(reference[c], current[c]) for c in contract.numeric], repeats=1)
    figures["baseline_1M_in_process"] = {
        "drift_check_s": round(ours, 3),
        "ks_tests_numeric_only_s": round(ks, 3),
        "ratio_drift_check_vs_ks": round(ours / ks, 2),
    }
    figures["features"] = NUMERIC + CATEGORICAL
    return figures


def main() -> None:
    figures = {"machine": {"python": platform.python_version()}, "drift": drift_figures()}
    if Path("params.yaml").exists() and Path("models/model").exists():
        figures["serving"] = serving_figures(Path("params.yaml"))
        figures["outlier_check"] = outlier_figures(Path("params.yaml"))
        figures["killed_worker"] = killed_worker_figures(Path("params.yaml"))
    else:
        skipped = "skipped: run `make all` first (needs models/model)"
        figures["serving"] = figures["outlier_check"] = figures["killed_worker"] = skipped
    text = json.dumps(figures, indent=2)
    print(text)
    # The record the drift CronJob's memory limit is checked against (tests/monitoring): the last run's peak.
    RECORD.write_text(text + "\n")


if __name__ == "__main__":
    main()
