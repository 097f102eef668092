"""Featurize stage: the train/test split, and the feature transformations the model uses.

The transformations live in the model pipeline (not in the stored tables) so the
served model takes the raw columns and applies exactly what training applied.
"""

from __future__ import annotations

import pandas as pd
from mlops_runtime.config import DataContract, Params
from mlops_runtime.files import read_table, write_table
from mlops_runtime.text import normalise_text
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler


def build_preprocessor(contract: DataContract) -> ColumnTransformer:
    """Impute, scale numeric columns; normalise text as ingest does, impute, one-hot encode categorical ones.

    The normalisation is part of the model so that a served request with " Month-To-Month "
    gets what training saw ("month-to-month"), whichever server loads the model.
    """
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    categorical = Pipeline(
        [
            ("normalise", FunctionTransformer(normalise_text, feature_names_out="one-to-one")),
            ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
            ("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]
    )
    return ColumnTransformer(
        [("numeric", numeric, contract.numeric), ("categorical", categorical, contract.categorical)],
        remainder="drop",
    )


def split(
    frame: pd.DataFrame, contract: DataContract, test_size: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stratified split on the label, keeping only the contract's columns."""
    frame = frame[[*contract.features, contract.label]]
    return train_test_split(frame, test_size=test_size, random_state=seed, stratify=frame[contract.label])


def main(params: Params) -> str:
    frame = read_table(params.path("validated"), produced_by="validate")
    train, test = split(frame, params.data, params.featurize.test_size, params.featurize.seed)
    write_table(train.reset_index(drop=True), params.path("train"))
    write_table(test.reset_index(drop=True), params.path("test"))
    return f"split {len(frame)} rows: {len(train)} -> {params.paths.train}, {len(test)} -> {params.paths.test}"
