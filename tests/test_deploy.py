"""Kubernetes manifests: every overlay of every runtime builds and validates; the pin is the one model switch."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import REPO_ROOT, generate, project_pythonpath
from .test_render import COMBINATIONS, ENVIRONMENTS

# One project per serving runtime x monitoring choice, named as in the rendering matrix.
PROJECTS = {
    "defaults": COMBINATIONS["defaults"],
    "local-kserve-nomonitoring-py310": COMBINATIONS["local-kserve-nomonitoring-py310"],
    "custom-names-deployment": COMBINATIONS["custom-names-deployment"],
    "s3-deployment-nomonitoring-py312": COMBINATIONS["s3-deployment-nomonitoring-py312"],
}
SERVING_KIND = {"kserve": "InferenceService", "deployment": "Deployment"}
MONITORED = [name for name, answers in PROJECTS.items() if answers.get("enable_monitoring", True)]


@pytest.fixture(scope="module", params=list(PROJECTS), ids=list(PROJECTS))
def project(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    dst = generate(tmp_path_factory.mktemp(request.param) / "project", **PROJECTS[request.param])
    return dst, yaml.safe_load((dst / ".copier-answers.yml").read_text())


@pytest.fixture(scope="module", params=MONITORED, ids=MONITORED)
def monitored(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with monitoring, one per serving runtime."""
    return generate(tmp_path_factory.mktemp(request.param) / "project", **PROJECTS[request.param])


def validate(root: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The generated `python -m <package> manifests validate`, run from the project's sources.

    K8S_SCHEMAS_DIR is unset and HOME points into the project: the schemas come from the project alone.
    """
    package = yaml.safe_load((root / ".copier-answers.yml").read_text())["package_name"]
    environ = {k: v for k, v in os.environ.items() if k != "K8S_SCHEMAS_DIR"}
    environ |= {"PYTHONPATH": project_pythonpath(root), "HOME": str(root), **(env or {})}
    cmd = [sys.executable, "-m", package, "manifests", "validate", *extra]
    return subprocess.run(cmd, cwd=root, capture_output=True, text=True, env=environ, timeout=300)


def build(root: Path, target: str) -> list[dict[str, Any]]:
    """The objects kustomize builds from deploy/<target>."""
    cmd = ["kustomize", "build"] if shutil.which("kustomize") else ["kubectl", "kustomize"]
    done = subprocess.run([*cmd, str(root / "deploy" / target)], capture_output=True, text=True, check=True)
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def find(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    matches = [doc for doc in docs if doc["kind"] == kind]
    assert len(matches) == 1, f"expected one {kind}, got {len(matches)}"
    return matches[0]


def test_every_overlay_builds_and_validates(project: tuple[Path, dict]) -> None:
    """dev, staging, prod and the Argo CD objects build with kustomize and pass strict schema validation."""
    root, _ = project
    done = validate(root)
    assert done.returncode == 0, done.stdout + done.stderr
    for target in [*(f"deploy/overlays/{env}" for env in ENVIRONMENTS), "deploy/argocd"]:
        assert re.search(rf"{target}: \d+ objects, valid", done.stdout), done.stdout


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        # A wrong type in a core kind, and unknown fields in core kinds and custom resources.
        ("base/serviceaccount.yaml", "automountServiceAccountToken: false", "automountServiceAccountToken: nope",
         r"deploy/base/serviceaccount.yaml: ServiceAccount/\S+: automountServiceAccountToken: 'nope' is not of type"),
        ("base/externalsecret.yaml", "  refreshInterval: 1h", "  refreshInterval: 1h\n  refreshEvery: 1h",
         r"deploy/base/externalsecret.yaml: ExternalSecret/\S+-storage: spec: .*'refreshEvery' was unexpected"),
        ("base/networkpolicy.yaml", "  policyTypes:", "  policyTypez:",
         r"deploy/base/networkpolicy.yaml: NetworkPolicy/\S+-server: spec: .*'policyTypez' was unexpected"),
        ("argocd/appproject.yaml", "  sourceRepos:", "  sourceRepositories:",
         r"deploy/argocd/appproject.yaml: AppProject/\S+: spec: .*'sourceRepositories' was unexpected"),
    ],
)  # fmt: skip
def test_broken_manifest_fails_validation(
    project: tuple[Path, dict], tmp_path: Path, file: str, old: str, new: str, expected: str
) -> None:
    """A wrong type or unknown field fails `manifests validate` (exit 5) naming file, kind, name and field."""
    root = tmp_path / "project"
    shutil.copytree(project[0], root)
    path = root / "deploy" / file
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new, 1))
    done = validate(root)
    assert done.returncode == 7, done.stdout + done.stderr
    assert re.search(expected, done.stderr), done.stderr


def test_serving_object_unknown_field_fails(project: tuple[Path, dict], tmp_path: Path) -> None:
    """An unknown field in the runtime's serving object (InferenceService or Deployment) fails validation."""
    root = tmp_path / "project"
    shutil.copytree(project[0], root)
    runtime = project[1]["serving_runtime"]
    path = root / "deploy/base" / ("inferenceservice.yaml" if runtime == "kserve" else "deployment.yaml")
    text = path.read_text()
    anchor = "    serviceAccountName:" if runtime == "kserve" else "      serviceAccountName:"
    path.write_text(text.replace(anchor, anchor.replace("serviceAccountName:", "serviceAcountName: x\n") + anchor, 1))
    done = validate(root)
    assert done.returncode == 7, done.stdout + done.stderr
    assert f"{path.relative_to(root)}: {SERVING_KIND[runtime]}/" in done.stderr
    assert "serviceAcountName" in done.stderr and "(in dev, staging, prod)" in done.stderr


def test_missing_schema_folder_is_named_with_the_fix(project: tuple[Path, dict], tmp_path: Path) -> None:
    """Without deploy/schemas, validation stops (exit 2) and says how to get the folder back (never a silent pass)."""
    root = tmp_path / "project"
    shutil.copytree(project[0], root)
    shutil.rmtree(root / "deploy/schemas")
    done = validate(root)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "deploy/schemas" in done.stderr and "restore deploy/schemas from git" in done.stderr


def test_schema_folder_override_is_used(project: tuple[Path, dict], tmp_path: Path) -> None:
    """K8S_SCHEMAS_DIR replaces the vendored folder: an empty one fails each custom resource, naming how to add it."""
    (tmp_path / "empty").mkdir()
    done = validate(project[0], env={"K8S_SCHEMAS_DIR": str(tmp_path / "empty")})
    assert done.returncode == 7, done.stdout + done.stderr
    assert "no schema for argoproj.io/v1alpha1 AppProject" in done.stderr
    assert "--add argoproj.io/appproject_v1alpha1.json" in done.stderr


def _model_values(path: Path) -> list[str]:
    """Model coordinates written in a deploy file: storage URIs, model env values, version labels, registry URIs.

    "none" is the placeholder that components/pinned-model writes before the pin's values replace it.
    """
    found = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("storageUri", "storageUris", "model.mlops/version") and value != "none":
                    found.append(f"{key}={value}")
                walk(value)
            if node.get("name") in ("MODEL_URI", "MODEL_VERSION") and node.get("value", "none") != "none":
                found.append(f"{node['name']}={node['value']}")
        elif isinstance(node, list):
            for item in node:
                walk(item)

    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        for doc in yaml.safe_load_all(text):
            walk(doc)
    found += re.findall(r"models:/\S+|runs:/\S+|mlflow-artifacts:\S+", text)
    return found


def test_pin_file_is_the_only_place_a_model_version_appears(project: tuple[Path, dict], tmp_path: Path) -> None:
    """Only deploy/overlays/<env>/model.yaml holds model coordinates; what it says reaches the served objects."""
    root = tmp_path / "project"
    shutil.copytree(project[0], root)
    pins = {root / f"deploy/overlays/{env}/model.yaml" for env in ENVIRONMENTS}
    manifests = [p for p in (root / "deploy").rglob("*") if p.is_file() and "schemas" not in p.parts]
    others = [p for p in manifests if p not in pins]
    assert {str(p.relative_to(root)): _model_values(p) for p in others if _model_values(p)} == {}
    # The check can fail: a storage URI written into the base is found.
    planted = root / "deploy/base/planted.yaml"
    planted.write_text("spec:\n  storageUri: s3://models/run-1/artifacts/model\n")
    assert _model_values(planted) == ["storageUri=s3://models/run-1/artifacts/model"]
    planted.unlink()

    runtime = project[1]["serving_runtime"]
    for number, env in enumerate(ENVIRONMENTS, start=40):
        pin = yaml.safe_load((root / f"deploy/overlays/{env}/model.yaml").read_text())
        pin["spec"].update(version=str(number), storageUri=f"s3://models/{env}/run-{number}/artifacts/model")
        pin["spec"].update({"stopped": "false"} if runtime == "kserve" else {"replicas": 1})
        pin["metadata"]["annotations"]["model.mlops/git-commit"] = f"commit-{number}"
        pin["spec"]["image"] = f"registry.example.com/app:commit-{number}"
        if "suspendDrift" in pin["spec"]:
            pin["spec"]["suspendDrift"] = False
        (root / f"deploy/overlays/{env}/model.yaml").write_text(yaml.safe_dump(pin, sort_keys=False))
        docs = build(root, f"overlays/{env}")
        # One image per overlay: every workload runs the pin's, tagged with the commit.
        assert set(images(docs)) == {pin["spec"]["image"]}
        if project[1]["enable_monitoring"]:
            assert find(docs, "CronJob")["spec"]["suspend"] is False
        served = find(docs, SERVING_KIND[runtime])
        assert served["metadata"]["labels"]["model.mlops/version"] == str(number)
        assert served["metadata"]["annotations"]["model.mlops/git-commit"] == f"commit-{number}"
        if runtime == "kserve":
            predictor = served["spec"]["predictor"]
            assert predictor["model"]["storageUri"] == pin["spec"]["storageUri"]
            assert {"name": "MODEL_VERSION", "value": str(number)} in predictor["model"]["env"]
            assert served["metadata"]["annotations"]["serving.kserve.io/stop"] == "false"
        else:
            container = served["spec"]["template"]["spec"]["containers"][0]
            assert {"name": "MODEL_URI", "value": pin["spec"]["storageUri"]} in container["env"]
            assert served["spec"]["replicas"] == 1
            assert served["spec"]["template"]["metadata"]["annotations"]["model.mlops/git-commit"] == f"commit-{number}"
    assert validate(root).returncode == 0


def images(docs: list[dict[str, Any]]) -> list[str]:
    """The image of every container of every workload (ServingRuntime, Deployment, CronJob) in `docs`."""
    found = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("containers"), list):
                found.extend(str(c.get("image")) for c in node["containers"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(docs)
    return found


def test_unpinned_overlays_run_nothing(project: tuple[Path, dict]) -> None:
    """Before any promotion every overlay deploys, but no model server pod runs and no pin reaches the cluster."""
    root, answers = project
    for env in ENVIRONMENTS:
        docs = build(root, f"overlays/{env}")
        assert "ModelPin" not in {doc["kind"] for doc in docs}
        # No image to run yet, and the drift job waits for a model.
        assert images(docs) and set(images(docs)) == {"none"}
        if answers["enable_monitoring"]:
            assert find(docs, "CronJob")["spec"]["suspend"] is True
        served = find(docs, SERVING_KIND[answers["serving_runtime"]])
        assert served["metadata"]["namespace"] == f"{answers['k8s_namespace']}-{env}"
        if answers["serving_runtime"] == "kserve":
            assert served["metadata"]["annotations"]["serving.kserve.io/stop"] == "true"
        else:
            assert served["spec"]["replicas"] == 0


# Where each workload kind holds its pod spec; a ServingRuntime has none (its containers run in the
# InferenceService's pod).
POD_SPEC = {"Deployment": "spec.template.spec", "CronJob": "spec.jobTemplate.spec.template.spec",
            "InferenceService": "spec.predictor"}  # fmt: skip


def at(doc: dict[str, Any], path: str) -> Any:
    for key in path.split("."):
        doc = doc[key]
    return doc


def test_every_pod_runs_as_the_image_user(project: tuple[Path, dict]) -> None:
    """components/pod-security gives every workload of every overlay the one pod security context, whose user
    is the Dockerfile's; no container picks a user of its own."""
    root, answers = project
    context = yaml.safe_load((root / "deploy/components/pod-security/pod-security.yaml").read_text())["spec"][
        "securityContext"
    ]
    image_user = re.search(r"^ARG APP_UID=(\d+)$", (root / "Dockerfile").read_text(), re.MULTILINE)
    assert image_user, "the Dockerfile names no APP_UID"
    assert context["runAsUser"] == context["runAsGroup"] == context["fsGroup"] == int(image_user[1])
    assert context["runAsNonRoot"] is True and context["seccompProfile"] == {"type": "RuntimeDefault"}
    expected = {SERVING_KIND[answers["serving_runtime"]]} | ({"CronJob"} if answers["enable_monitoring"] else set())
    for env in ENVIRONMENTS:
        docs = build(root, f"overlays/{env}")
        assert "PodSecurity" not in {doc["kind"] for doc in docs}
        workloads = [doc for doc in docs if doc["kind"] in POD_SPEC]
        assert {doc["kind"] for doc in workloads} == expected
        for doc in workloads:
            assert at(doc, POD_SPEC[doc["kind"]])["securityContext"] == context, (env, doc["kind"])
        # Every object with containers is one of those workloads, or the runtime that KServe puts in one.
        assert {doc["kind"] for doc in docs if _containers(doc)} <= set(POD_SPEC) | {"ServingRuntime"}
        own_users = [set(c.get("securityContext", {})) & {"runAsUser", "runAsGroup", "runAsNonRoot"}
                     for doc in docs for c in _containers(doc)]  # fmt: skip
        assert own_users and not any(own_users)


def _containers(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        own = node["containers"] if isinstance(node.get("containers"), list) else []
        return own + [c for value in node.values() for c in _containers(value)]
    if isinstance(node, list):
        return [c for value in node for c in _containers(value)]
    return []


def test_alert_thresholds_follow_the_environment(project: tuple[Path, dict]) -> None:
    """With monitoring, each overlay's alerts read its own namespace and thresholds.yaml; without, none ship."""
    root, answers = project
    for env in ENVIRONMENTS:
        docs = build(root, f"overlays/{env}")
        kinds = {doc["kind"] for doc in docs}
        if not answers["enable_monitoring"]:
            assert kinds.isdisjoint({"PrometheusRule", "PodMonitor", "CronJob"})
            continue
        thresholds = yaml.safe_load((root / f"deploy/overlays/{env}/thresholds.yaml").read_text())
        namespace = yaml.safe_load((root / f"deploy/overlays/{env}/kustomization.yaml").read_text())["namespace"]
        assert thresholds["metadata"]["namespace"] == namespace
        rules = find(docs, "PrometheusRule")["spec"]["groups"][1]["rules"]
        exprs = {rule["alert"]: rule["expr"] for rule in rules}
        assert set(exprs) == {
            "ModelServerUnavailable", "ModelServerErrorRatioHigh", "ModelServerLatencyP95High",
            "ModelDataDrift", "ModelOutlierShareHigh", "ModelDriftJobStale",
        }  # fmt: skip
        assert all(f'{{namespace="{namespace}"}}' in expr for expr in exprs.values()), exprs
        assert exprs["ModelServerErrorRatioHigh"].endswith(f"> {thresholds['spec']['errorRatioMax']}")
        assert exprs["ModelDataDrift"].endswith(f"> {thresholds['spec']['driftShareMax']}")
        assert exprs["ModelOutlierShareHigh"].endswith(f"> {thresholds['spec']['outlierShareMax']}")
        assert exprs["ModelServerUnavailable"].endswith(f"< {thresholds['spec']['availabilityMin']}")
        assert exprs["ModelDriftJobStale"].endswith(f"> {thresholds['spec']['driftJobMaxAgeSeconds']}")
        dashboard = find(docs, "ConfigMap")
        assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert find(docs, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"][
            -2:
        ] == ["monitor", "drift"]


def test_argocd_has_one_application_per_overlay(project: tuple[Path, dict]) -> None:
    """The ApplicationSet lists every overlay; dev and staging sync automatically, prod by hand."""
    root, answers = project
    appset = find(build(root, "argocd"), "ApplicationSet")
    elements = appset["spec"]["generators"][0]["list"]["elements"]
    assert [e["env"] for e in elements] == ENVIRONMENTS
    assert {e["env"]: e["autoSync"] for e in elements} == {"dev": "true", "staging": "true", "prod": "false"}
    assert all((root / f"deploy/overlays/{e['env']}/kustomization.yaml").is_file() for e in elements)
    assert appset["spec"]["template"]["spec"]["source"]["path"] == "deploy/overlays/{{ .env }}"
    assert "automated:" in appset["spec"]["templatePatch"] and "selfHeal: true" in appset["spec"]["templatePatch"]
    assert appset["spec"]["template"]["spec"]["project"] == answers["project_slug"]


def drift_job(docs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, str]]:
    """The built drift CronJob and its `--option=value` arguments, `$(VAR)` read from its env as Kubernetes does."""
    job = find(docs, "CronJob")
    (container,) = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item["value"] for item in container["env"] if "value" in item}
    options = {}
    for arg in container["args"]:
        name, _, value = arg.partition("=")
        options[name] = re.sub(r"\$\((\w+)\)", lambda m: env.get(m[1], m[0]), value)
    return job, options


def test_drift_job_takes_every_value_from_its_environment(project: tuple[Path, dict]) -> None:
    """Each environment's thresholds.yaml alone sets its drift job: schedule, data, reference, breach threshold and
    Pushgateway. The job breaches where its alert fires, compares with champion-<env>, and prod's values are
    params.yaml's (what `make monitor` uses locally). No Argo workflow checks drift."""
    root, answers = project
    assert not (root / "pipelines/monitoring.py").exists()
    if not answers["enable_monitoring"]:
        assert not any(doc["kind"] == "CronJob" for doc in build(root, "overlays/prod"))
        return
    monitor = yaml.safe_load((root / "params.yaml").read_text())["monitor"]
    for env in ENVIRONMENTS:
        spec = yaml.safe_load((root / f"deploy/overlays/{env}/thresholds.yaml").read_text())["spec"]
        docs = build(root, f"overlays/{env}")
        job, options = drift_job(docs)
        assert job["spec"]["schedule"] == spec["driftSchedule"]
        assert options["--reference"] == spec["driftReference"] == f"champion-{env}"
        assert options["--current"] == spec["driftCurrent"] and f"/{env}/" in spec["driftCurrent"]
        assert options["--pushgateway"] == spec["pushgateway"]
        assert options["--max-drift-share"] == spec["driftShareMax"]
        assert "--dispatch" in options and options["--out"].startswith("/tmp/")
        rules = {rule["alert"]: rule["expr"] for rule in find(docs, "PrometheusRule")["spec"]["groups"][1]["rules"]}
        assert rules["ModelDataDrift"].endswith(f"> {options['--max-drift-share']}")
        if env == ENVIRONMENTS[-1]:
            assert float(spec["driftShareMax"]) == monitor["max_drift_share"]
            assert float(spec["outlierShareMax"]) == monitor["max_outlier_share"]
            assert spec["driftReference"] == monitor["reference"]
    # Only the overlays say when, where and what: the component and params.yaml do not.
    assert not {"schedule", "current", "pushgateway"} & set(monitor)
    cronjob = (root / "deploy/components/monitoring/drift-cronjob.yaml").read_text()
    assert "champion" not in cronjob and "s3://" not in cronjob and "pushgateway." not in cronjob


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        # The job no longer reads its environment's threshold: it breaches elsewhere than its alert fires.
        ("deploy/components/monitoring/drift-cronjob.yaml", "--max-drift-share=$(MAX_DRIFT_SHARE)",
         "--max-drift-share=0.5", r"overlays/dev: the drift job breaches above 0.5 but ModelDataDrift fires above "
         r"0.25: both must read driftShareMax of deploy/overlays/dev/thresholds.yaml"),
        # dev's job compares with the model prod serves.
        ("deploy/overlays/dev/thresholds.yaml", "driftReference: champion-dev", "driftReference: champion-prod",
         r"overlays/dev: the drift job compares with 'champion-prod', not 'champion-dev'"),
        # Local checks laxer than prod's job, or prod's job laxer than local checks.
        ("params.yaml", "max_drift_share: 0.1 ", "max_drift_share: 0.2 ",
         r"monitor.max_drift_share in params.yaml is 0.2 but driftShareMax in deploy/overlays/prod/thresholds.yaml "
         r"is 0.1"),
        ("deploy/overlays/prod/thresholds.yaml", 'outlierShareMax: "0.05"', 'outlierShareMax: "0.2"',
         r"monitor.max_outlier_share in params.yaml is 0.05 but outlierShareMax in deploy/overlays/prod/"),
    ],
    ids=["job-vs-alert", "alias", "params-vs-prod", "prod-vs-params"],
)  # fmt: skip
def test_drift_job_disagreements_fail_validation(
    monitored: Path, tmp_path: Path, file: str, old: str, new: str, expected: str
) -> None:
    """`make validate` (exit 7) names a drift job, alert or params.yaml that disagree, and the file to change."""
    root = tmp_path / "project"
    shutil.copytree(monitored, root)
    path = root / file
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new, 1))
    done = validate(root)
    assert done.returncode == 7, done.stdout + done.stderr
    assert re.search(expected, done.stderr), done.stderr


def test_prod_and_params_move_together(monitored: Path, tmp_path: Path) -> None:
    """Changing prod's drift share in both thresholds.yaml and params.yaml validates; the job and alert follow."""
    root = tmp_path / "project"
    shutil.copytree(monitored, root)
    for file, old, new in [
        ("deploy/overlays/prod/thresholds.yaml", 'driftShareMax: "0.1"', 'driftShareMax: "0.15"'),
        ("params.yaml", "max_drift_share: 0.1 ", "max_drift_share: 0.15 "),
    ]:
        text = (root / file).read_text()
        assert old in text
        (root / file).write_text(text.replace(old, new, 1))
    done = validate(root)
    assert done.returncode == 0, done.stdout + done.stderr
    assert drift_job(build(root, "overlays/prod"))[1]["--max-drift-share"] == "0.15"


def test_champion_alias_is_written_once_outside_python() -> None:
    """The alias pattern champion-<env> is one macro in includes/ for every rendered YAML (params.yaml, each
    overlay's thresholds.yaml); Python has registry.CHAMPION_ALIAS, which `make validate` compares with."""
    pattern = re.compile(r"champion-(\{\{|dev\b|staging\b|prod\b)")
    prose_or_python = re.compile(r"\.(py|md)(\.jinja)?$|\.gz$")
    files = [p for folder in ("includes", "template") for p in (REPO_ROOT / folder).rglob("*") if p.is_file()]
    found = [str(p.relative_to(REPO_ROOT)) for p in files if not prose_or_python.search(p.name)]
    found = sorted(name for name in found if pattern.search((REPO_ROOT / name).read_text()))
    assert found == ["includes/monitoring.jinja"]


def test_server_cpus_match_its_workers(project: tuple[Path, dict], tmp_path: Path) -> None:
    """Each overlay gives the server whole CPUs with the request equal to the limit (one worker per CPU), and
    `make validate` fails, naming the overlay, when a request drifts below its limit."""
    root, answers = project
    for env in ("dev", "staging", "prod"):
        server = find(build(root, f"overlays/{env}"), SERVING_KIND[answers["serving_runtime"]])
        resources = (
            server["spec"]["template"]["spec"]["containers"][0]["resources"]
            if server["kind"] == "Deployment"
            else server["spec"]["predictor"]["model"]["resources"]
        )
        assert resources["requests"]["cpu"] == resources["limits"]["cpu"] and resources["limits"]["cpu"].isdigit()
    copy = tmp_path / "project"
    shutil.copytree(root, copy)
    overlay = copy / "deploy/overlays/prod/kustomization.yaml"
    text = overlay.read_text()
    assert 'requests: {cpu: "2"' in text
    overlay.write_text(text.replace('requests: {cpu: "2"', 'requests: {cpu: "500m"', 1))
    done = validate(copy)
    assert done.returncode == 7, done.stdout + done.stderr
    assert "overlays/prod: the model server's CPU request 500m and limit 2 must be the same whole number" in (
        done.stderr
    )


def test_server_port_matches_params(project: tuple[Path, dict], tmp_path: Path) -> None:
    """`make validate` fails, naming each manifest field, when serve.port and the manifests' port part."""
    root, answers = project
    copy = tmp_path / "project"
    shutil.copytree(root, copy)
    params = copy / "params.yaml"
    text = params.read_text()
    port = answers.get("serving_port", 8080)
    assert f"  port: {port}  #" in text
    params.write_text(text.replace(f"  port: {port}  #", "  port: 9191  #", 1))
    done = validate(copy)
    assert done.returncode == 7, done.stdout + done.stderr
    server = SERVING_KIND[answers["serving_runtime"]]
    field = "containerPort" if server == "Deployment" else "readinessProbe"
    assert f"overlays/prod: {server} " in done.stderr and f" {field} is {port} but serve.port" in done.stderr, (
        done.stderr
    )
    assert "NetworkPolicy" in done.stderr and "use the same port in both" in done.stderr


def test_the_drift_job_token_comes_by_reference(monitored: Path) -> None:
    """Each overlay asks External Secrets for the Secret the drift job reads GITHUB_TOKEN from; no value is written."""
    for env in ("dev", "staging", "prod"):
        docs = build(monitored, f"overlays/{env}")
        job = find(docs, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
        wanted = next(e["valueFrom"]["secretKeyRef"] for e in job["env"] if e["name"] == "GITHUB_TOKEN")
        secrets = {d["spec"]["target"]["name"]: d for d in docs if d["kind"] == "ExternalSecret"}
        assert wanted["name"] in secrets, f"{env}: no ExternalSecret makes {wanted['name']}"
        github = secrets[wanted["name"]]
        assert [item["secretKey"] for item in github["spec"]["data"]] == [wanted["key"]]
        assert github["metadata"]["namespace"] == find(docs, "CronJob")["metadata"]["namespace"], env
        assert not any(d["kind"] == "Secret" for d in docs), f"{env}: a Secret with values in the repository"


@pytest.mark.parametrize(
    ("path", "edit", "message"),
    [
        (
            "overlays/staging/kustomization.yaml",
            lambda text: text + "images:\n  - name: none\n    newName: evil.example.com/x\n    newTag: latest\n",
            "is 'evil.example.com/x:latest', the pin's image is 'none'",
        ),
        (
            "overlays/staging/model.yaml",
            lambda text: text.replace("spec:\n", 'spec:\n  image: "evil.example.com/x:latest"\n', 1),
            "duplicate key 'image'",
        ),
    ],
    ids=["overlay-images", "pin-duplicate-key"],
)
def test_what_an_overlay_serves_is_its_pin(
    project: tuple[Path, dict], tmp_path: Path, path: str, edit: Any, message: str
) -> None:
    """An overlay's `images:` or a pin kustomize reads otherwise than the gate fails validation, named."""
    root = tmp_path / "project"
    shutil.copytree(project[0], root)
    target = root / "deploy" / path
    target.write_text(edit(target.read_text()))
    done = validate(root)
    assert done.returncode == 7, done.stdout + done.stderr
    assert message in done.stderr and "deploy/overlays/staging" in done.stderr, done.stderr
