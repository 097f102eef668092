"""The pipeline stages, in run order: each module's main(params) runs one stage of dvc.yaml.

`python -m <package> <stage>` runs a stage the same way locally (DVC) and on the cluster (Argo).
"""

from __future__ import annotations

# Stage name -> what it does; the command line and the docs list them in this order.
STAGES: dict[str, str] = {
    "ingest": "read the raw data source and normalise it",
    "validate": "check the data against the contract in params.yaml",
    "featurize": "split train/test for the feature pipeline",
    "train": "search hyperparameters, log the model to MLflow",
    "evaluate": "held-out metrics, slice report, success-criteria gate",
    "register": "register a model that passed the gate, alias it challenger",
}
