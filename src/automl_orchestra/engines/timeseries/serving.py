"""Serving a time-series pipeline: a model trained on tsfresh features (the seed's service registers its
``automl/tpot`` step ``ts-{id}``) also answers the long series table its features were extracted from.

A registered version of such a model takes, as its signature says, rows of feature values. Its feature
columns are tsfresh names (``a__maximum``, ``b__fft_coefficient__attr_"real"__coeff_1``) and so are its
feature settings: a request that sends instead the long table -- ``id``, optionally ``time``, and the value
channels the features name, one row per time point -- has those exact features extracted per series (as
``transform/tsfresh`` does with ``featureSettings``: same columns in the same order, then imputed) and gets
one answer per series (ordered by id, as tsfresh orders them), with ``ids`` saying which is which.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from automl_orchestra.contracts.errors import StepError
from automl_orchestra.engines.core.serving import Rows
from automl_orchestra.engines.timeseries.tsfresh import impute_features

ID_COLUMN = "id"
SORT_COLUMN = "time"


class SeriesInput:
    """The long-table input form of a model whose columns are tsfresh features of ``kinds``."""

    def __init__(self, columns: list[str], kinds: list[str], settings: dict[str, Any]) -> None:
        self.columns = columns
        self.kinds = kinds
        self.settings = settings
        self.hint = (
            f"or send the long series table: columns {ID_COLUMN!r}, {SORT_COLUMN!r} (optional) and the channel(s) "
            f"{kinds}, one row per time point"
        )

    def matches(self, frame: pd.DataFrame) -> bool:
        given = {str(name) for name in frame.columns}
        return ID_COLUMN in given and set(self.kinds) <= given and not set(self.columns) <= given

    def rows(self, frame: pd.DataFrame) -> Rows:
        from tsfresh import extract_features

        frame = frame.rename(columns=str)
        text = [kind for kind in self.kinds if not pd.api.types.is_numeric_dtype(frame[kind])]
        if text:
            raise StepError(f"the series channel(s) {text} must hold numbers")
        if frame[ID_COLUMN].isna().any():
            raise StepError(f"every row of the series table needs its series {ID_COLUMN!r}")
        sort = SORT_COLUMN if SORT_COLUMN in frame.columns else None
        series = frame[[ID_COLUMN, *([sort] if sort else []), *self.kinds]]
        features = extract_features(
            series,
            column_id=ID_COLUMN,
            column_sort=sort,
            kind_to_fc_parameters=self.settings,
            n_jobs=0,
            disable_progressbar=True,
        )
        # The model's columns in its order; a feature tsfresh could not compute here is imputed like any.
        features = impute_features(features.reindex(columns=self.columns))
        ids = [value.item() if isinstance(value, np.generic) else value for value in features.index]
        return Rows(features.reset_index(drop=True), ids)


def series_input(columns: list[str]) -> SeriesInput | None:
    """The input form for a version taking ``columns``, when every one is a tsfresh feature name."""
    if not columns or not all("__" in name and not name.startswith("__") for name in columns):
        return None
    from tsfresh.feature_extraction import feature_calculators
    from tsfresh.feature_extraction.settings import from_columns

    if not all(callable(getattr(feature_calculators, name.split("__")[1], None)) for name in columns):
        return None
    try:
        settings: dict[str, Any] = from_columns(columns)
    except (ValueError, IndexError, AttributeError):
        return None
    kinds = list(dict.fromkeys(name.split("__")[0] for name in columns))
    return SeriesInput(list(columns), kinds, settings)
