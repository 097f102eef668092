"""Command line: `python -m <package> <stage>`, the same command locally (DVC) and on the cluster."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

from .config import PARAMS_FILE, load_params
from .errors import ContractViolation, DataError, GateFailed, ParamsError, SubmitError

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

EXIT_BAD_INPUT = 2  # params.yaml, an argument or a data file is wrong or missing
EXIT_GATE_FAILED = 3  # the model misses the success criteria; nothing registered
EXIT_CONTRACT_VIOLATED = 4  # the data breaks the data contract
EXIT_SUBMIT_FAILED = 5  # the Argo server is unreachable or refused the workflow
EXIT_CODES: dict[type[Exception], int] = {
    ParamsError: EXIT_BAD_INPUT,
    DataError: EXIT_BAD_INPUT,
    GateFailed: EXIT_GATE_FAILED,
    ContractViolation: EXIT_CONTRACT_VIOLATED,
    SubmitError: EXIT_SUBMIT_FAILED,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m {__package__}", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in {**STAGES, **TOOLS}.items():
        stage = commands.add_parser(name, help=help_text, description=help_text)
        stage.add_argument("--params", type=Path, default=Path(PARAMS_FILE), help="params file (default: %(default)s)")
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
    sample = commands.add_parser("sample-data", help="write the synthetic sample data set")
    sample.add_argument("output", type=Path)
    sample.add_argument("--rows", type=int, default=5000)
    sample.add_argument("--seed", type=int, default=7)
    return parser


def run_stage(name: str, args: argparse.Namespace) -> str:
    params = load_params(args.params)
    return importlib.import_module(f".{name}", __package__).main(params)


def run_pipeline(args: argparse.Namespace) -> str:
    from . import argo

    root = Path.cwd()
    built = argo.workflows(root) if args.action == "render" else {}
    if args.action == "render" and args.check:
        stale = argo.stale(built, args.out)
        if stale:
            raise ParamsError(f"out of date: {', '.join(stale)}; run `make render` and commit")
        return f"{len(built)} workflow(s) up to date in {args.out}"
    if args.action == "render":
        return "\n".join(f"wrote {path}" for path in argo.render(built, args.out))

    from hera.workflows import Workflow

    from .lineage import UNKNOWN, git_commit

    module = argo.load_module(root, "training")
    revision = args.revision or git_commit(root)
    if revision == UNKNOWN:
        raise ParamsError("no git commit to run: pass --revision SHA (the image tag built for that commit)")
    workflow = module.build(
        Workflow,
        generate_name=f"{module.params.mlflow.experiment}-training-",
        arguments={"revision": revision, "params-overrides": json.dumps(argo.overrides(args.set))},
    )
    name, link = argo.submit(workflow)
    return f"submitted {name} (revision {revision})\n  {link}"


def run_sample_data(args: argparse.Namespace) -> str:
    from .sample_data import write_sample

    return f"wrote {write_sample(args.output, rows=args.rows, seed=args.seed)}"


def main(argv: list[str] | None = None) -> int:
    """Run one command; known errors become a message on stderr and their exit code."""
    args = build_parser().parse_args(argv)
    handlers = {"pipeline": run_pipeline, "sample-data": run_sample_data}
    try:
        summary = handlers[args.command](args) if args.command in handlers else run_stage(args.command, args)
    except (ParamsError, DataError, ContractViolation, GateFailed, SubmitError) as exc:
        print(f"{args.command}: {exc}", file=sys.stderr)
        return EXIT_CODES[type(exc)]
    print(f"{args.command}: {summary}")
    return 0
