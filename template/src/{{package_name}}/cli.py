"""Command line: `python -m <package> <stage>`, the same command locally (DVC) and on the cluster."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

from .config import PARAMS_FILE, load_params
from .errors import ContractViolation, DataError, GateFailed, ParamsError

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

EXIT_BAD_INPUT = 2  # params.yaml or a data file is wrong or missing
EXIT_GATE_FAILED = 3  # the model misses the success criteria; nothing registered
EXIT_CONTRACT_VIOLATED = 4  # the data breaks the data contract
EXIT_SUBMIT_FAILED = 5  # the Argo server is unreachable or refused the workflow


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


def run_stage(name: str, params_path: Path) -> int:
    try:
        params = load_params(params_path)
        summary = importlib.import_module(f".{name}", __package__).main(params)
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


def run_pipeline_command(args: argparse.Namespace) -> int:
    from . import argo

    root = Path.cwd()
    try:
        if args.action == "render":
            built = argo.workflows(root)
            if args.check:
                stale = argo.stale(built, args.out)
                if stale:
                    print(f"pipeline: out of date: {', '.join(stale)}; run `make render` and commit", file=sys.stderr)
                    return EXIT_BAD_INPUT
                print(f"pipeline: {len(built)} workflow(s) up to date in {args.out}")
                return 0
            for path in argo.render(built, args.out):
                print(f"pipeline: wrote {path}")
            return 0
        from hera.workflows import Workflow

        from .lineage import git_commit

        module = argo.load_module(root, "training")
        revision = args.revision or git_commit(root)
        workflow = module.build(
            Workflow,
            generate_name=f"{module.params.mlflow.experiment}-training-",
            arguments={"revision": revision, "params-overrides": json.dumps(argo.overrides(args.set))},
        )
        name, link = argo.submit(workflow)
    except ParamsError as exc:
        print(f"pipeline: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except argo.SubmitError as exc:
        print(f"pipeline: {exc}", file=sys.stderr)
        return EXIT_SUBMIT_FAILED
    print(f"pipeline: submitted {name} (revision {revision})\n  {link}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "pipeline":
        return run_pipeline_command(args)
    if args.command == "sample-data":
        from .sample_data import write_sample

        print(f"sample-data: wrote {write_sample(args.output, rows=args.rows, seed=args.seed)}")
        return 0
    return run_stage(args.command, args.params)
