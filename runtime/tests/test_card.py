"""The model card: evaluate writes it from the owners' sections and its results, it travels in the model's folder,
the server shows it in the model metadata, and an incomplete card says what it lacks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from mlflow import MlflowClient
from starlette.testclient import TestClient

from mlops_runtime import card
from mlops_runtime.config import Params, load_params
from mlops_runtime.errors import ParamsError
from mlops_runtime.registry import download
from mlops_runtime.release.charts import slice_chart
from mlops_runtime.sample_data import write_sample
from mlops_runtime.serving.model import ServedModel
from mlops_runtime.serving.server import build_app

from .conftest import MODEL_NAME, PROJECT_ROOT, edit_params, stage_modules

evaluate, featurize, ingest, register, train, validate = stage_modules(
    "evaluate", "featurize", "ingest", "register", "train", "validate"
)

MODEL = MODEL_NAME


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> Params:
    """A project folder whose pipeline ran once to a registered version (version 1)."""
    root = tmp_path_factory.mktemp("card")
    for name in ("params.yaml", "model_card.md"):
        shutil.copy(PROJECT_ROOT / name, root / name)
    params = load_params(root / "params.yaml")
    write_sample(root / params.ingest.source, rows=2000, seed=5)
    search = {"method": "grid", "cv_folds": 2, "scoring": "roc_auc", "space": {"max_iter": [40], "max_depth": [3]}}
    edit_params(root, train={"search": search})
    params = load_params(root / "params.yaml")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        for stage in (ingest, validate, featurize, train, evaluate, register):
            stage.main(params)
    return params


@pytest.fixture
def registry(evaluated: Params, monkeypatch: pytest.MonkeyPatch) -> Params:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{evaluated.root / 'mlflow.db'}")
    return evaluated


def test_evaluate_writes_a_complete_card_in_both_forms(evaluated: Params) -> None:
    """Every written and computed section, with the figures of this run; the Markdown opens with HF metadata."""
    written = json.loads(evaluated.path("card").read_text())
    assert card.problems(written) == []
    info = json.loads(evaluated.path("model_info").read_text())
    metrics = json.loads(evaluated.path("metrics").read_text())
    assert written["model"]["run_id"] == info["run_id"] and written["model"]["name"] == MODEL
    assert {m["name"]: m["value"] for m in written["metrics"]}["roc_auc"] == metrics["roc_auc"]
    assert written["slices"] == json.loads(evaluated.path("slices").read_text())
    assert [f["criterion"] for f in written["fairness"]] == [b.name for b in evaluated.evaluate.fairness]
    assert written["data"]["training_rows"] + written["data"]["evaluation_rows"] == 2000
    assert sum(b["rows"] for b in written["calibration"]["bins"]) == written["data"]["evaluation_rows"]
    assert set(written["drift_reference"]["features"]) == set(evaluated.data.columns)
    assert written["lineage"]["dvc_data_hash"] not in ("", "unknown")
    text = evaluated.path("card_markdown").read_text()
    front = yaml.safe_load(text.split("---\n")[1])
    assert front["pipeline_tag"] == "tabular-classification" and "churn" in front["tags"]
    assert {"type": "roc_auc", "value": metrics["roc_auc"]} in front["model-index"][0]["results"][0]["metrics"]
    for heading in ("## Intended use", "## Out-of-scope uses", "### Fairness criteria", "### Calibration"):
        assert heading in text


def test_the_card_travels_with_the_registered_version(registry: Params) -> None:
    """The version's model folder (what a server or KServe's storage initializer gets) carries the card."""
    client = MlflowClient()
    version = client.get_model_version(MODEL, "1")
    assert version.tags["model_card"] == "complete"
    folder = download(f"models:/{MODEL}/1")
    assert json.loads((folder / card.JSON_FILE).read_text()) == json.loads(registry.path("card").read_text())
    assert card.recorded(client.get_model_version_download_uri(MODEL, "1"), version.run_id)["schema"] == card.SCHEMA


def test_the_server_shows_the_card_in_the_model_metadata(registry: Params) -> None:
    """make serve's server: the V2 model metadata carries the card; /v2/models/<name>/model_card gives Markdown."""
    app = build_app(registry, ServedModel(f"models:/{MODEL}/1", "model", "1"), announce=False)
    with TestClient(app) as client:
        metadata = client.get("/v2/models/model").json()
        assert metadata["model_card"]["model"]["run_id"] == client.app.state.endpoints.model_card["model"]["run_id"]
        assert card.problems(metadata["model_card"]) == []
        markdown = client.get("/v2/models/model/model_card")
        assert markdown.status_code == 200 and markdown.text.count("# Model card: ") == 1
        assert f"# Model card: {MODEL} version 1" in markdown.text
        assert client.get("/v2/models/other/model_card").status_code == 404


def test_a_model_folder_without_a_card_serves_with_null(registry: Params) -> None:
    """A folder without model_card.json (the pipeline's own models/model) serves; the card is null, its path 404."""
    app = build_app(registry, ServedModel(str(registry.path("model")), "model", "1"), announce=False)
    with TestClient(app) as client:
        assert client.get("/v2/models/model").json()["model_card"] is None
        assert client.get("/v2/models/model/model_card").status_code == 404


def test_card_text_sections_front_matter_and_comments(tmp_path: Path) -> None:
    """Sections by their ## heading (any case), HTML comments are not text, front matter is metadata."""
    path = tmp_path / "model_card.md"
    path.write_text(
        "---\nlicense: mit\n---\n# Title\n\n## Intended use\nRank customers.\n\n## out-of-scope USES\n"
        "<!-- write here -->\n\n## Known limitations\nSmall data.\n## Ethical considerations\nNone known.\n"
    )
    metadata, sections = card.read_text(path)
    assert metadata == {"license": "mit"}
    assert sections == {
        "intended_use": "Rank customers.",
        "out_of_scope_uses": "",
        "known_limitations": "Small data.",
        "ethical_considerations": "None known.",
    }
    assert card.read_text(tmp_path / "absent.md") == ({}, dict.fromkeys(card.WRITTEN, ""))
    path.write_text("---\nlicense: [mit\n---\n## Intended use\nx\n")
    with pytest.raises(ParamsError, match="front matter is not YAML"):
        card.read_text(path)
    path.write_text("---\nlicense: mit\n## Intended use\nx\n")
    with pytest.raises(ParamsError, match="never closes"):
        card.read_text(path)


def test_problems_name_each_missing_section(evaluated: Params) -> None:
    written = json.loads(evaluated.path("card").read_text())
    lacking = {k: v for k, v in written.items() if k != "calibration"} | {"known_limitations": ""}
    assert card.problems(lacking) == [
        "the section 'Known limitations' has no text (write it in the card text, then evaluate again)",
        "the computed section 'calibration' is missing (evaluate again)",
    ]
    assert card.problems({"anything": 1}) == [f"it is not a model card of schema {card.SCHEMA}"]


def test_evaluate_without_the_card_text_writes_an_incomplete_card(
    workdir: Path, params: Params, capsys: pytest.CaptureFixture[str]
) -> None:
    """The pipeline still runs without model_card.md; the card lacks the owners' sections and evaluate says so."""
    (workdir / "model_card.md").unlink()
    for stage in (ingest, validate, featurize, train):
        stage.main(params)
    said = evaluate.main(params)
    assert "is INCOMPLETE" in said and "'Intended use' has no text" in said
    assert len(card.problems(json.loads(params.path("card").read_text()))) == len(card.WRITTEN)


def test_calibration_of_known_probabilities() -> None:
    """Two bins: 0.1 predicted and 0.2 observed, 0.9 predicted and 0.9 observed; ECE weights the gaps by rows."""
    prob = np.array([0.1] * 10 + [0.9] * 10)
    y = np.array([1] * 2 + [0] * 8 + [1] * 9 + [0])
    report = card.calibration(y, prob)
    assert [(b["bin"], b["rows"], b["observed"]) for b in report["bins"]] == [
        ("0.1-0.2", 10, 0.2),
        ("0.9-1.0", 10, 0.9),
    ]
    assert report["expected_calibration_error"] == pytest.approx(0.05)


def test_a_chart_shows_data_values_as_text_only() -> None:
    """Slice values come from data files: quotes, brackets and line breaks cannot leave a Mermaid label."""
    slices = [
        {"slice": "region", "value": 'x"]\n```\n<img src=x>', "recall": 0.5},
        {"slice": "region", "value": "north", "recall": 0.7},
    ]
    chart = slice_chart("region", "recall", slices, slices, "challenger v2", "champion v1")
    body = chart.split("\n")[1:-1]
    assert "```" not in "\n".join(body) and "<" not in chart and len(body) == 6
    [axis] = [line for line in body if "x-axis" in line]
    assert axis == '    x-axis ["north", "x________img src=x_"]'


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"schema": "model-card/0"}, "not a model card of schema"),
        ({"intended_use": ["a list"]}, "the section 'intended_use' is not text"),
        ({"metrics": {"roc_auc": 0.9}}, "the computed section 'metrics' is not a JSON list"),
        ({"slices": [{"value": "north"}]}, "a row of 'slices' is not an object with slice, value"),
        ({"calibration": {"bins": [["0.1", 3]]}}, "a row of 'calibration'"),
    ],
)
def test_a_malformed_card_is_named_and_never_shown(registry: Params, tmp_path: Path, change: dict, said: str) -> None:
    """A card read from a registry is checked: what is wrong is named, and the server shows none rather than crash."""
    written = json.loads(registry.path("card").read_text())
    broken = {**written, **change}
    assert any(said in problem for problem in card.malformed(broken)), card.malformed(broken)
    assert card.problems(broken) == card.malformed(broken)
    folder = tmp_path / "model"
    shutil.copytree(registry.path("model"), folder)
    (folder / card.JSON_FILE).write_text(json.dumps(broken))
    app = build_app(registry, ServedModel(str(folder), "model", "1"), announce=False)
    with TestClient(app) as client:
        assert client.get("/v2/models/model").json()["model_card"] is None


def test_a_card_text_that_cannot_be_read_stops_evaluate_first(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Front matter that is not YAML: exit 2 naming the file, before evaluate writes any report."""
    from mlops_runtime.cli import EXIT_BAD_INPUT, main

    (workdir / "model_card.md").write_text("---\nlicense: [mit\n---\n## Intended use\nx\n")
    assert main(["evaluate", "--params", str(workdir / "params.yaml")]) == EXIT_BAD_INPUT
    assert "model_card.md: its front matter is not YAML" in capsys.readouterr().err
    assert not (workdir / "reports").exists()
