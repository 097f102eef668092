"""Synthetic customer-churn data: realistic enough to exercise every stage.

Standard library only, so that project generation can write it before any
dependency is installed. The same seed always gives the same bytes, hence the
same DVC hash.
"""

from __future__ import annotations

import csv
import math
import random
import sys
from pathlib import Path

COLUMNS = [
    "customer_id",
    "age",
    "tenure_months",
    "monthly_charges",
    "support_calls",
    "contract",
    "payment_method",
    "internet_service",
    "region",
    "churned",
]
CONTRACTS = (("month-to-month", 0.55), ("one-year", 0.25), ("two-year", 0.20))
PAYMENTS = (("card", 0.3), ("bank-transfer", 0.25), ("electronic-check", 0.3), ("mailed-check", 0.15))
INTERNET = (("none", 0.15), ("dsl", 0.4), ("fiber", 0.45))
REGIONS = (("north", 0.3), ("south", 0.25), ("east", 0.25), ("west", 0.2))


def _pick(rng: random.Random, choices: tuple[tuple[str, float], ...]) -> str:
    values, weights = zip(*choices, strict=True)
    return rng.choices(values, weights=weights)[0]


def _messy(rng: random.Random, text: str) -> str:
    """Return the text as people type it now and then: odd case, stray spaces."""
    roll = rng.random()
    if roll < 0.03:
        return f" {text.upper()} "
    if roll < 0.06:
        return text.capitalize()
    return text


def make_row(rng: random.Random, index: int) -> dict[str, object]:
    """One customer; churn follows a logistic model of the account features."""
    contract = _pick(rng, CONTRACTS)
    internet = _pick(rng, INTERNET)
    payment = _pick(rng, PAYMENTS)
    region = _pick(rng, REGIONS)
    age = min(90, max(18, round(rng.gauss(42, 13))))
    tenure = min(120, max(0, round(rng.expovariate(1 / 28))))
    charges = {"none": 25.0, "dsl": 55.0, "fiber": 85.0}[internet] + rng.gauss(0, 12)
    calls = min(50, int(rng.expovariate(1 / 1.6)))
    logit = (
        -1.3
        + {"month-to-month": 1.4, "one-year": 0.0, "two-year": -1.2}[contract]
        + 0.45 * calls
        - 0.035 * tenure
        + 0.02 * (charges - 60)
        + (0.5 if internet == "fiber" else 0.0)
        + (0.45 if payment == "electronic-check" else 0.0)
        - 0.01 * (age - 42)
    )
    churned = int(rng.random() < 1 / (1 + math.exp(-logit)))
    return {
        "customer_id": f"C{index:06d}",
        "age": age,
        "tenure_months": tenure,
        # Missing values to clean: a billing export gap and unknown payment methods.
        "monthly_charges": "" if rng.random() < 0.03 else f"{max(0.0, charges):.2f}",
        "support_calls": calls,
        "contract": _messy(rng, contract),
        "payment_method": "" if rng.random() < 0.04 else _messy(rng, payment),
        "internet_service": internet,
        "region": region,
        "churned": churned,
    }


def write_sample(path: Path, rows: int = 5000, seed: int = 7) -> Path:
    """Write `rows` customers (plus a few exact duplicates, as exports have) to CSV."""
    rng = random.Random(seed)
    records = [make_row(rng, i) for i in range(rows)]
    records += rng.sample(records, k=max(1, rows // 200))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
    return path


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: sample_data.py OUTPUT.csv [ROWS]")
    write_sample(Path(sys.argv[1]), rows=int(sys.argv[2]) if len(sys.argv) == 3 else 5000)
