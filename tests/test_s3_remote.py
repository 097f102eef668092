"""Slow: a project with an S3 DVC remote, against a local S3-compatible server (moto)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import REPO_ROOT, run

pytestmark = pytest.mark.slow
BUCKET = "churn-data"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A moto S3 server with one bucket; AWS_* variables point every client (DVC, s3fs, boto3) at it."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    endpoint = f"http://127.0.0.1:{port}"
    for name, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
    }.items():
        monkeypatch.setenv(name, value)
    import boto3

    client = boto3.client("s3")
    for _ in range(50):
        try:
            client.create_bucket(Bucket=BUCKET)
            break
        except Exception:  # the server is still starting
            time.sleep(0.2)
    yield endpoint
    server.terminate()
    server.wait(timeout=10)


def objects(prefix: str) -> list[str]:
    import boto3

    listing = boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return [item["Key"] for item in listing.get("Contents", [])]


def test_s3_remote_end_to_end(s3: str, tmp_path: Path) -> None:
    """Generation pushes the sample data to S3; `make all` pulls and pushes there; a clone pulls it all back;
    ingest reads an s3:// source."""
    root = tmp_path / "project"
    # A copier process of its own: its copy task must see the AWS_* variables set above.
    answers = ["--data", "dvc_remote=s3", "--data", f"dvc_remote_url=s3://{BUCKET}/dvc"]
    copy = [sys.executable, "-m", "copier", "copy", "--quiet", "--trust", "--defaults", "--vcs-ref", "HEAD"]
    run([*copy, *answers, str(REPO_ROOT), str(root)], cwd=tmp_path)
    assert objects("dvc/"), "the copy task pushed nothing to the S3 remote"

    env = {"MLFLOW_TRACKING_URI": "", "OMP_NUM_THREADS": "1"}
    out = run(["make", "all"], cwd=root, env=env)
    assert "registered as" in out
    run(["git", "add", "--all"], cwd=root)
    run(["git", "commit", "--quiet", "--no-verify", "-m", "First model"], cwd=root)

    clone = tmp_path / "clone"
    run(["git", "clone", "--quiet", str(root), str(clone)], cwd=tmp_path)
    run([str(root / ".venv/bin/dvc"), "pull", "--quiet"], cwd=clone)
    assert (clone / "models/model/MLmodel").exists()
    assert (clone / "data/raw/customers.csv").read_bytes() == (root / "data/raw/customers.csv").read_bytes()

    import boto3

    boto3.client("s3").upload_file(str(root / "data/raw/customers.csv"), BUCKET, "raw/customers.csv")
    overrides = {"PARAMS_OVERRIDES": f'{{"ingest": {{"source": "s3://{BUCKET}/raw/customers.csv"}}}}'}
    ingested = run([str(root / ".venv/bin/python"), "-m", "customer_churn", "ingest"], cwd=root, env=overrides)
    assert f"from s3://{BUCKET}/raw/customers.csv" in ingested
    assert os.environ["AWS_ENDPOINT_URL"] == s3
