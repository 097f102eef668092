"""Command line: `python -m <package> <stage>`, the same command locally (DVC) and on the cluster."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from pathlib import Path

from .config import PARAMS_FILE, Params, load_params
from .errors import ContractViolation, DataError, GateFailed, ManifestError, ParamsError

# Pipeline stages in run order; each is a module with main(params) -> summary.
STAGES: dict[str, str] = {
    "ingest": "read the raw data source and normalise it",
    "validate": "check the data against the contract in params.yaml",
    "featurize": "split train/test for the feature pipeline",
    "train": "search hyperparameters, log the model to MLflow",
    "evaluate": "held-out metrics, slice report, success-criteria gate",
    "register": "register a model that passed the gate, alias it challenger",
}
# Other commands that read params.yaml, in the same form.
TOOLS: dict[str, str] = {
    "summary": "print what the last run produced and where to find it",
}
# Commands with options of their own (see build_parser).
SERVE_HELP = "serve a registered model over the open inference protocol (v2) with Prometheus metrics"
MANIFESTS_HELP = "build every Kubernetes overlay with kustomize and validate it offline"
MONITOR_HELP = "compare recent inputs with the training data (population stability index)"

EXIT_BAD_INPUT = 2  # params.yaml or a data file is wrong or missing
EXIT_GATE_FAILED = 3  # the model misses the success criteria; nothing registered
EXIT_CONTRACT_VIOLATED = 4  # the data breaks the data contract
EXIT_MANIFESTS_INVALID = 5  # a Kubernetes manifest does not build or validate


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m {__package__}", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in {**STAGES, **TOOLS}.items():
        stage = commands.add_parser(name, help=help_text, description=help_text)
        stage.add_argument("--params", type=Path, default=Path(PARAMS_FILE), help="params file (default: %(default)s)")
    params_option = {"type": Path, "default": Path(PARAMS_FILE), "help": "params file (default: %(default)s)"}
    serve = commands.add_parser("serve", help=SERVE_HELP, description=SERVE_HELP)
    serve.add_argument("--params", **params_option)
    which = serve.add_mutually_exclusive_group()
    which.add_argument("--env", help="serve the version pinned in deploy/overlays/ENV/model.yaml")
    which.add_argument("--model-uri", help="serve this MLflow model URI or directory (default: $MODEL_URI)")
    serve.add_argument(
        "--model-name", help="name in the /v2/models/NAME URLs (default: $MODEL_NAME or the registry name)"
    )
    serve.add_argument("--host", help="address to listen on (default: serve.host in params.yaml)")
    serve.add_argument("--port", type=int, help="port (default: serve.port in params.yaml)")

    manifests = commands.add_parser("manifests", help=MANIFESTS_HELP, description=MANIFESTS_HELP)
    manifests.add_argument("action", choices=["validate"])
    manifests.add_argument("--params", **params_option)
    manifests.add_argument("--schemas", type=Path, help="custom-resource schema folder (default: $K8S_SCHEMAS_DIR)")

    monitor = commands.add_parser("monitor", help=MONITOR_HELP, description=MONITOR_HELP)
    monitor.add_argument("action", choices=["drift"])
    monitor.add_argument("--params", **params_option)
    monitor.add_argument("--current", required=True, help="recent inputs: a CSV or Parquet file, local or s3://")
    monitor.add_argument("--reference", help="training inputs (default: paths.train in params.yaml)")
    monitor.add_argument("--pushgateway", help="push the result to this Prometheus Pushgateway URL")
    monitor.add_argument("--namespace", default="local", help="namespace label of the pushed metrics")
    monitor.add_argument("--if-present", action="store_true", help="succeed without measuring when --current is absent")

    sample = commands.add_parser("sample-data", help="write the synthetic sample data set")
    sample.add_argument("output", type=Path)
    sample.add_argument("--rows", type=int, default=5000)
    sample.add_argument("--seed", type=int, default=7)
    return parser


def _command(args: argparse.Namespace) -> Callable[[Params], str]:
    """The function behind a command, given its parsed options."""
    if args.command == "serve":
        from . import serve

        return lambda params: serve.main(
            params,
            env=args.env,
            model_uri=args.model_uri,
            model_name=args.model_name,
            host=args.host or params.serve.host,
            port=args.port or params.serve.port,
        )
    if args.command == "manifests":
        from . import manifests

        return lambda params: manifests.main(params, schemas=args.schemas)
    if args.command == "monitor":
        from . import monitor

        return lambda params: monitor.main(
            params,
            args.current,
            reference=args.reference,
            pushgateway=args.pushgateway,
            namespace=args.namespace,
            if_present=args.if_present,
        )
    return importlib.import_module(f".{args.command}", __package__).main


def run_stage(name: str, params_path: Path, command: Callable[[Params], str] | None = None) -> int:
    try:
        params = load_params(params_path)
        summary = (command or importlib.import_module(f".{name}", __package__).main)(params)
    except ManifestError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return EXIT_MANIFESTS_INVALID
    except (ParamsError, DataError) as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ContractViolation as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return EXIT_CONTRACT_VIOLATED
    except GateFailed as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return EXIT_GATE_FAILED
    print(f"{name}: {summary}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "sample-data":
        from .sample_data import write_sample

        print(f"sample-data: wrote {write_sample(args.output, rows=args.rows, seed=args.seed)}")
        return 0
    return run_stage(args.command, args.params, _command(args))
