"""Command line: `python -m <package> <stage>`, the same command locally (DVC) and on the cluster."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from .config import PARAMS_FILE, load_params
from .errors import (
    ContractViolation,
    CriteriaNotMet,
    DataError,
    GateFailed,
    ManifestError,
    MonitorBreach,
    NoModelCard,
    NotInRegistry,
    NotReproducible,
    ParamsError,
    PinMismatch,
    RegistryOutOfSync,
    RulesChanged,
    SkipsEnvironment,
    SubmitError,
    TaskFailed,
    WorseThanChampion,
)
from .project import bind, package

# Other commands that read params.yaml, in the same form.
TOOLS: dict[str, str] = {
    "summary": "print what the last run produced and where to find it",
}

EXIT_BAD_INPUT = 2  # params.yaml, an argument or a data file is wrong or missing
EXIT_GATE_FAILED = 3  # the model misses the success criteria; nothing registered
EXIT_CONTRACT_VIOLATED = 4  # the data breaks the data contract
EXIT_SUBMIT_FAILED = 5  # a server (MLflow, Argo, Pushgateway, GitHub) did not answer in time or refused the request
EXIT_MONITOR_BREACH = 6  # drift or outliers above the thresholds in params.yaml
EXIT_MANIFESTS_INVALID = 7  # a Kubernetes manifest does not build or validate
# `promote` refusals, one code per reason (docs/promotion.md).
EXIT_NOT_IN_REGISTRY = 8  # the version (or the champion it replaces) is not in the MLflow registry
EXIT_CRITERIA_NOT_MET = 9  # its recorded evaluation fails the success criteria in params.yaml
EXIT_WORSE_THAN_CHAMPION = 10  # it scores worse than the pinned model, and no --allow-worse --reason
EXIT_SKIPS_ENVIRONMENT = 11  # it is not pinned in the previous environment (dev -> staging -> prod)
EXIT_PIN_MISMATCH = 12  # a pin file disagrees with the registry (edited by hand)
EXIT_RULES_CHANGED = 13  # a pull request changes the promotion rules in params.yaml and a pin together
EXIT_TASK_FAILED = 14  # `pipeline run-local`: a task of the workflow failed or left a declared output unwritten
EXIT_NOT_REPRODUCIBLE = 15  # trained from uncommitted changes: it may serve in the first environment (dev) only
EXIT_REGISTRY_OUT_OF_SYNC = 16  # `history --check-registry`: an alias champion-<env> is not on its pinned version
EXIT_NO_MODEL_CARD = 17  # the version has no model card, or its card lacks a written or computed section
EXIT_CODES: dict[type[Exception], int] = {
    ParamsError: EXIT_BAD_INPUT,
    DataError: EXIT_BAD_INPUT,
    GateFailed: EXIT_GATE_FAILED,
    ContractViolation: EXIT_CONTRACT_VIOLATED,
    SubmitError: EXIT_SUBMIT_FAILED,
    MonitorBreach: EXIT_MONITOR_BREACH,
    ManifestError: EXIT_MANIFESTS_INVALID,
    NotInRegistry: EXIT_NOT_IN_REGISTRY,
    CriteriaNotMet: EXIT_CRITERIA_NOT_MET,
    WorseThanChampion: EXIT_WORSE_THAN_CHAMPION,
    SkipsEnvironment: EXIT_SKIPS_ENVIRONMENT,
    PinMismatch: EXIT_PIN_MISMATCH,
    NotReproducible: EXIT_NOT_REPRODUCIBLE,
    RulesChanged: EXIT_RULES_CHANGED,
    TaskFailed: EXIT_TASK_FAILED,
    RegistryOutOfSync: EXIT_REGISTRY_OUT_OF_SYNC,
    NoModelCard: EXIT_NO_MODEL_CARD,
}
SERVE_HELP = "serve a registered model over the open inference protocol (v2) with Prometheus metrics"
MANIFESTS_HELP = (
    "build every Kubernetes overlay with kustomize and validate it offline against deploy/schemas; "
    "or refresh those schemas from the CRDs catalog"
)
PROMOTE_HELP = "pin a registered model version in an environment (deploy/overlays/ENV/model.yaml) behind the gates"


def _params_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", type=Path, default=Path(PARAMS_FILE), help="params file (default: %(default)s)")


def _add_pipeline(commands: argparse._SubParsersAction) -> None:
    pipeline = commands.add_parser("pipeline", help="the pipeline on Argo Workflows (pipelines/*.py)")
    actions = pipeline.add_subparsers(dest="action", required=True, metavar="ACTION")
    render = actions.add_parser("render", help="write each workflow's YAML (default: beside its module)")
    render.add_argument("--out", type=Path, default=Path("pipelines"), help="folder (default: %(default)s)")
    render.add_argument("--check", action="store_true", help="fail if the YAML on disk is not what the modules build")
    submit = actions.add_parser(
        "submit", help="run the training workflow on the Argo server in ARGO_SERVER (ARGO_TOKEN, ARGO_NAMESPACE)"
    )
    submit.add_argument("--revision", help="git commit to run (image tag); default: HEAD")
    submit.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a parameter")
    _add_run_local(actions)


def _add_run_local(actions: argparse._SubParsersAction) -> None:
    help_text = "run a rendered workflow (pipelines/NAME.yaml) task by task on this machine, to debug and test it"
    run = actions.add_parser("run-local", help=help_text, description=help_text)
    run.add_argument("--workflow", default="training", help="NAME of pipelines/NAME.yaml (default: %(default)s)")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a parameter")
    run.add_argument(
        "-p", "--parameter", action="append", default=[], metavar="NAME=VALUE", help="a workflow parameter"
    )
    run.add_argument("--workdir", type=Path, help="new folder for the tasks' workspaces and logs (default: a temp one)")
    run.add_argument(
        "--image", help="run each task in this Docker image (make image) as Argo would, not as a process here"
    )


def _share(text: str) -> float:
    """A breach threshold given on the command line: a share from 0 up to, not including, 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number: give a share such as 0.2") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a share from 0 up to (not including) 1")
    return value


def _add_monitor(commands: argparse._SubParsersAction) -> None:
    monitor = commands.add_parser("monitor", help="data drift and outliers against a model's training data")
    checks = monitor.add_subparsers(dest="check", required=True, metavar="CHECK")
    for check, help_text in (("drift", "per-feature drift and drift share"), ("outliers", "share of outlier rows")):
        parser = checks.add_parser(check, help=help_text, description=help_text)
        parser.add_argument(
            "--reference", help="model version number, alias, or model folder (default: monitor.reference)"
        )
        parser.add_argument(
            "--current", help="CSV or Parquet file, or log folder, of current rows (default: serve.log_inputs)"
        )
        # The cluster's drift job passes its environment's threshold (deploy/overlays/<env>/thresholds.yaml).
        share = "max_drift_share" if check == "drift" else "max_outlier_share"
        parser.add_argument(
            f"--{share.replace('_', '-')}", type=_share, help=f"breach above this share (default: monitor.{share})"
        )
        _params_option(parser)
        parser.add_argument("--out", type=Path, help="report folder (default: monitor.reports in params.yaml)")
        parser.add_argument(
            "--textfile", type=Path, help="write Prometheus metrics for node-exporter's textfile collector"
        )
        parser.add_argument("--pushgateway", help="push Prometheus metrics to this Pushgateway URL")
        parser.add_argument("--namespace", default="local", help="namespace label of pushed metrics (environment)")
        parser.add_argument(
            "--if-present", action="store_true", help="succeed without measuring when there is no data or no model yet"
        )
        if check == "drift":
            parser.add_argument(
                "--dispatch", action="store_true", help="on a breach, also send the result as `monitor dispatch` does"
            )
    dispatch = checks.add_parser(
        "dispatch", help="send a drift result to GitHub as repository_dispatch (GITHUB_TOKEN, GITHUB_REPOSITORY)"
    )
    dispatch.add_argument("--result", type=Path, required=True, help="drift.json written by `monitor drift`")


def _add_serve(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser("serve", help=SERVE_HELP, description=SERVE_HELP)
    _params_option(serve)
    which = serve.add_mutually_exclusive_group()
    which.add_argument("--env", help="serve the version pinned in deploy/overlays/ENV/model.yaml")
    which.add_argument("--model-uri", help="serve this MLflow model URI or directory (default: $MODEL_URI)")
    serve.add_argument("--model-name", help="name in the /v2/models/NAME URLs (default: $MODEL_NAME or registry name)")
    serve.add_argument("--host", help="address to listen on (default: serve.host in params.yaml)")
    serve.add_argument("--port", type=int, help="port (default: serve.port in params.yaml)")
    serve.add_argument(
        "--workers", type=int, help="processes serving (default: serve.workers in params.yaml; 0 there: one per CPU)"
    )


def _add_manifests(commands: argparse._SubParsersAction) -> None:
    manifests = commands.add_parser("manifests", help=MANIFESTS_HELP, description=MANIFESTS_HELP)
    manifests.add_argument("action", choices=["validate", "schemas"], help="validate, or refresh deploy/schemas")
    _params_option(manifests)
    manifests.add_argument(
        "--schemas", type=Path, help="validate: schema folder (default: $K8S_SCHEMAS_DIR, else deploy/schemas)"
    )
    manifests.add_argument("--commit", help="schemas: full commit of the CRDs catalog to take them from")
    manifests.add_argument("--from", dest="source", help="schemas: a local checkout of the catalog (default: download)")
    manifests.add_argument("--add", action="append", default=[], help="schemas: also vendor GROUP/KIND_VERSION.json")


def _add_promote(commands: argparse._SubParsersAction) -> None:
    promote = commands.add_parser("promote", help=PROMOTE_HELP, description=PROMOTE_HELP)
    _params_option(promote)
    promote.add_argument("--env", help="environment whose pin changes (or, with --diff, is compared with)")
    which = promote.add_mutually_exclusive_group()
    which.add_argument("--version", help="registered version number to pin")
    which.add_argument("--commit", help="pin the newest version registered from this git commit")
    promote.add_argument("--wait", type=int, default=0, help="with --commit: seconds to wait for it to be registered")
    promote.add_argument("--allow-worse", action="store_true", help="pin a version worse than the champion (rollback)")
    promote.add_argument("--reason", default="", help="why, with --allow-worse; recorded in the pin and the PR")
    promote.add_argument("--body", type=Path, help="write the pull request body (markdown) here instead of stdout")
    mode = promote.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="CI: the gates on every pin changed against --base")
    mode.add_argument("--sync", action="store_true", help="after merge: aliases champion-<env> follow the pins")
    mode.add_argument("--diff", action="store_true", help="markdown: reports/ of this workspace vs the model in --env")
    promote.add_argument("--base", default="origin/main", help="with --check: the base branch (default: %(default)s)")


def _add_history(commands: argparse._SubParsersAction) -> None:
    help_text = "which model version each environment served, and since when, from the git history of its pin"
    history = commands.add_parser("history", help=help_text, description=help_text)
    _params_option(history)
    history.add_argument("--env", action="append", default=[], help="an environment (repeat; default: all)")
    history.add_argument("--at", metavar="DATE", help="what served at this ISO date or datetime (UTC unless given)")
    history.add_argument("--json", action="store_true", help="print JSON (docs/promotion.md lists its keys)")
    history.add_argument(
        "--check-registry", action="store_true", help="fail when an alias champion-<env> is not on its pinned version"
    )


def _add_sample_data(commands: argparse._SubParsersAction) -> None:
    sample = commands.add_parser("sample-data", help="write the synthetic sample data set")
    sample.add_argument("output", type=Path)
    sample.add_argument("--rows", type=int, default=5000)
    sample.add_argument("--seed", type=int, default=7)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m {package()}", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in {**project_stages(), **TOOLS}.items():
        _params_option(commands.add_parser(name, help=help_text, description=help_text))
    adders = (_add_pipeline, _add_monitor, _add_serve, _add_manifests, _add_promote, _add_history, _add_sample_data)
    for add in adders:
        add(commands)
    return parser


def project_stages() -> dict[str, str]:
    """The project's stages in run order (STAGES of `<package>.stages`): name -> what it does."""
    return importlib.import_module(f"{package()}.stages").STAGES


def run_stage(name: str, args: argparse.Namespace) -> str:
    params = load_params(args.params)
    return importlib.import_module(f"{package()}.stages.{name}").main(params)


def run_pipeline(args: argparse.Namespace) -> str:
    if args.action == "render":
        from .argo.render import render_command

        return render_command(Path.cwd(), args.out, args.check)
    if args.action == "run-local":
        from .argo.run_local import run_local

        return run_local(Path.cwd(), args.workflow, args.set, args.parameter, args.workdir, args.image)
    from .argo.submit import submit_training

    return submit_training(Path.cwd(), args.revision, args.set)


def run_monitor(args: argparse.Namespace) -> str:
    if args.check == "dispatch":
        from .monitoring.report import dispatch

        return dispatch(args.result)
    from .monitoring.check import Request, run

    params = load_params(args.params)
    share = "max_drift_share" if args.check == "drift" else "max_outlier_share"
    if getattr(args, share) is not None:
        params = params.model_copy(update={"monitor": params.monitor.model_copy(update={share: getattr(args, share)})})
    current = args.current or (str(params.root / params.serve.log_inputs) if params.serve.log_inputs else None)
    if not current:
        raise ParamsError("pass --current: serve.log_inputs in params.yaml is empty, so no logged inputs to default to")
    request = Request(
        check=args.check,
        reference=args.reference or params.monitor.reference,
        current=current,
        out=args.out,
        textfile=args.textfile,
        pushgateway=args.pushgateway,
        namespace=args.namespace,
        if_present=args.if_present,
    )
    try:
        return run(params, request)
    except MonitorBreach as breach:
        if not getattr(args, "dispatch", False):
            raise
        from .monitoring.report import dispatch

        # The report the check just wrote, sent as `monitor dispatch --result` sends it.
        result = (args.out or params.root / params.monitor.reports) / "drift.json"
        try:
            sent = dispatch(result)
        except (ParamsError, SubmitError) as exc:
            raise type(exc)(f"{breach}; the breach was not sent: {exc}") from None
        raise MonitorBreach(f"{breach}; {sent}") from None


def run_serve(args: argparse.Namespace) -> str:
    from .serving.starting import UntilServing

    starting = UntilServing()  # first: a stop signal while the model loads must stop `serve`, not be lost
    from .serving import server as serve

    params = load_params(args.params)
    if args.workers is not None and args.workers < 1:
        raise ParamsError(f"--workers {args.workers}: give 1 or more processes, or leave it out for serve.workers")
    return serve.main(
        params,
        args.params,
        env=args.env,
        model_uri=args.model_uri,
        model_name=args.model_name,
        host=args.host or params.serve.host,
        port=args.port or params.serve.port,
        workers=args.workers,
        starting=starting,
    )


def run_manifests(args: argparse.Namespace) -> str:
    from .release import manifests

    params = load_params(args.params)
    if args.action == "schemas":
        if not args.commit:
            raise ParamsError("manifests schemas needs --commit: a full commit of the CRDs catalog")
        return manifests.refresh_schemas(params, args.commit, args.source, args.add)
    return manifests.main(params, schemas=args.schemas)


def run_promote(args: argparse.Namespace) -> str:
    from .files import write_atomic
    from .release import promote

    params = load_params(args.params)
    if args.check:
        return promote.check(params, args.base, args.body)
    if args.sync:
        return promote.sync(params)
    if args.diff:
        text = promote.diff(params, args.env)
        if args.body:
            write_atomic(args.body, text)
            return f"metrics comparison -> {args.body}"
        return "\n" + text
    if not (args.version or args.commit):
        raise ParamsError("say what to promote: --version N (or --commit SHA), with --env ENV")
    if args.allow_worse != bool(args.reason.strip()):
        raise ParamsError("--allow-worse and --reason TEXT go together: say why a worse model is pinned on purpose")
    return promote.promote(params, args.env, args.version, args.commit, args.wait, args.reason.strip(), args.body)


def run_history(args: argparse.Namespace) -> str:
    from .release.history import history

    text = history(load_params(args.params), args.env, args.at, args.check_registry, args.json)
    if args.json:
        print(text)  # stdout holds the JSON document alone, for tools to parse
        return ""
    return text


def run_sample_data(args: argparse.Namespace) -> str:
    from .sample_data import write_sample

    return f"wrote {write_sample(args.output, rows=args.rows, seed=args.seed)}"


def main(argv: list[str] | None = None, project: str | None = None) -> int:
    """Run one command for `project` (its package; by default the one named, see project.py); known errors become
    a message on stderr and their exit code."""
    if project:
        bind(project)
    args = build_parser().parse_args(argv)
    handlers = {
        "pipeline": run_pipeline,
        "monitor": run_monitor,
        "serve": run_serve,
        "manifests": run_manifests,
        "promote": run_promote,
        "history": run_history,
        "sample-data": run_sample_data,
    }
    try:
        summary = handlers[args.command](args) if args.command in handlers else run_stage(args.command, args)
    except tuple(EXIT_CODES) as exc:
        print(f"{args.command}: {exc}", file=sys.stderr)
        return EXIT_CODES[type(exc)]
    except Exception as exc:
        # MLflow turns a server that stops answering mid-command into its own exception types.
        unanswered = importlib.import_module(".registry", __package__).lost(exc) if "mlflow" in sys.modules else None
        if unanswered is None:
            raise
        print(f"{args.command}: {unanswered}", file=sys.stderr)
        return EXIT_SUBMIT_FAILED
    if summary:  # empty: the command printed its own output (JSON)
        print(f"{args.command}: {summary}")
    return 0
