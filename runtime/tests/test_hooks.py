"""The project's hooks (params.yaml `hooks:`): code of its own around the server and the drift check, with no
edit to either. The hooks below are the documented examples (docs/hooks.md), named by their import path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

from mlops_runtime.cli import EXIT_BAD_INPUT, EXIT_MONITOR_BREACH, main
from mlops_runtime.config import Params, load_params
from mlops_runtime.errors import ParamsError
from mlops_runtime.files import read_table
from mlops_runtime.sample_data import write_sample
from mlops_runtime.serving.hooks import load_serving_hook
from mlops_runtime.serving.model import ServedModel
from mlops_runtime.serving.protocol import OUTPUT_NAME, encode_request
from mlops_runtime.serving.server import build_app

from .conftest import PROJECT_ROOT, edit_params, stage_modules

featurize, ingest, train, validate = stage_modules("featurize", "ingest", "train", "validate")

URL = "/v2/models/model/infer"


class ScoreAndGuard:
    """A serving hook: refuses negative ages, and answers each row's churn probability beside the label."""

    def __init__(self) -> None:
        self.model = None  # set by the test: the hook may hold what it needs

    def before_predict(self, columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if np.nanmin(columns["age"]) < 0:
            raise ValueError("age must not be negative")
        return columns

    def after_predict(self, columns: dict[str, np.ndarray], predictions: np.ndarray) -> dict[str, np.ndarray]:
        return {"decision": np.where(predictions == 1, "call the customer", "no action")}


def share_of_seniors(batches, params: Params, most: float = 0.5) -> list[dict]:
    """A monitoring hook: the share of rows aged 65 and over, a breach above `most`."""
    rows = seniors = 0
    for batch in batches:
        rows += len(batch)
        seniors += int((batch["age"] >= 65).sum())
    share = seniors / rows if rows else 0.0
    return [{"name": "senior_share", "value": share, "breach": share > most, "detail": f"{seniors} of {rows} rows"}]


def no_seniors(batches, params: Params) -> list[dict]:
    """The same check with no senior allowed: it breaches on data that does not drift."""
    return share_of_seniors(batches, params, most=0.0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Params:
    root = tmp_path_factory.mktemp("hooked")
    shutil.copy(PROJECT_ROOT / "params.yaml", root / "params.yaml")
    write_sample(root / "data/raw/customers.csv", rows=1500, seed=21)
    edit_params(root, train={"search": {"cv_folds": 2, "space": {"max_iter": [40], "max_depth": [3]}}})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        params = load_params(root / "params.yaml")
        for stage in (ingest, validate, featurize, train):
            stage.main(params)
    return params


def hooked(params: Params, **hooks: str) -> Params:
    edit_params(params.root, hooks=hooks)
    return load_params(params.root / "params.yaml")


def rows(params: Params, count: int = 5) -> pd.DataFrame:
    return read_table(params.path("test")).drop(columns=[params.data.label]).head(count)


@pytest.mark.parametrize("fast_path", [True, False])
def test_serving_hook_adds_an_output_and_refuses_bad_rows(trained: Params, fast_path: bool) -> None:
    """after_predict's outputs are answered beside the prediction, and before_predict's ValueError is a 400
    naming the hook, on the fast path and on pyfunc alike."""
    edit_params(trained.root, serve={"fast_path": fast_path})
    params = hooked(trained, serving="tests.test_hooks:ScoreAndGuard")
    app = build_app(params, ServedModel(str(params.path("model")), "model", "1"), announce=False)
    with TestClient(app) as client:
        batch = rows(params)
        answer = client.post(URL, json=encode_request(batch)).json()
        outputs = {output["name"]: output for output in answer["outputs"]}
        labels = outputs[OUTPUT_NAME]["data"]
        assert outputs["decision"]["datatype"] == "BYTES"
        assert outputs["decision"]["data"] == ["call the customer" if label == 1 else "no action" for label in labels]
        bad = client.post(URL, json=encode_request(batch.assign(age=-3.0)))
        assert bad.status_code == 400
        assert "hooks.serving" in bad.json()["error"] and "age must not be negative" in bad.json()["error"]
        metadata = client.get("/v2/models/model").json()
        assert metadata["parameters"]["hooks.serving"] == "tests.test_hooks:ScoreAndGuard"


def test_serving_hook_binary_outputs_follow_in_order(trained: Params) -> None:
    """With the binary data extension, the hook's output follows the prediction's bytes, each with its size."""
    edit_params(trained.root, serve={"fast_path": True})
    params = hooked(trained, serving="tests.test_hooks:ScoreAndGuard")
    app = build_app(params, ServedModel(str(params.path("model")), "model", "1"), announce=False)
    body = {**encode_request(rows(params, 3)), "parameters": {"binary_data_output": True}}
    with TestClient(app) as client:
        answer = client.post(URL, json=body)
    header_size = int(answer.headers["inference-header-content-length"])
    header = json.loads(answer.content[:header_size])
    sizes = [output["parameters"]["binary_data_size"] for output in header["outputs"]]
    assert [output["name"] for output in header["outputs"]] == [OUTPUT_NAME, "decision"]
    assert header_size + sum(sizes) == len(answer.content)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("tests.no_such_module:Hook", "cannot import module"),
        ("tests.test_hooks:NoSuchHook", "has no 'NoSuchHook'"),
        ("tests.test_hooks:rows", "neither before_predict nor after_predict"),
    ],
)
def test_a_wrong_serving_hook_is_refused_before_serving(name: str, message: str) -> None:
    with pytest.raises(ParamsError, match=message):
        load_serving_hook(name)


def test_a_hook_name_that_is_not_module_colon_attribute_is_refused(trained: Params, capsys) -> None:
    edit_params(trained.root, hooks={"serving": "os.system('x')"})
    try:
        code = main(["monitor", "drift", "--params", str(trained.root / "params.yaml"), "--current", "x.csv"])
        assert code == EXIT_BAD_INPUT
        assert "module:attribute" in capsys.readouterr().err
    finally:
        edit_params(trained.root, hooks={"serving": ""})


def test_monitoring_hook_is_judged_with_drift(trained: Params, tmp_path: Path, capsys) -> None:
    """The project's check is in drift.json, and its breach alone fails `monitor drift` (exit 6) on rows that
    do not drift, as drift would."""
    args = ["--reference", str(trained.path("model")), "--params", str(trained.root / "params.yaml")]
    current = write_sample(tmp_path / "current.csv", rows=600, seed=4)
    hooked(trained, monitoring="tests.test_hooks:share_of_seniors", serving="")
    assert main(["monitor", "drift", *args, "--current", str(current), "--out", str(tmp_path / "a")]) == 0
    report = json.loads((tmp_path / "a/drift.json").read_text())
    assert report["drifted"] == [] and report["extra_checks"][0]["breach"] is False
    seniors = report["extra_checks"][0]["value"]
    assert 0 < seniors < 0.5
    hooked(trained, monitoring="tests.test_hooks:no_seniors", serving="")
    code = main(["monitor", "drift", *args, "--current", str(current), "--out", str(tmp_path / "b")])
    assert code == EXIT_MONITOR_BREACH
    assert "breached ['senior_share']" in capsys.readouterr().err
    report = json.loads((tmp_path / "b/drift.json").read_text())
    assert report["drifted"] == []
    assert report["extra_checks"][0]["name"] == "senior_share" and report["extra_checks"][0]["breach"] is True
    assert report["extra_checks"][0]["value"] == seniors
    hooked(trained, monitoring="")
