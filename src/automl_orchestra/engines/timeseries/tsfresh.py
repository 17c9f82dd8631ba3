"""``transform/tsfresh``: tsfresh's ``extract_features``, ``select_features`` and ``impute`` on the long
tables ``dataset/timeseries`` writes.

Feature tables keep the series id as their first column ``id``. An extraction stores the exact features it
computed (tsfresh's ``kind_to_fc_parameters`` form) in its metadata and as ``feature_settings.json``; a later
extraction given ``featureSettings: "$features_step"`` (any table whose columns are tsfresh feature names,
e.g. the selected training features) computes those same features in the same column order -- what a
model trained on them needs at prediction time.

``tsfresh`` is imported inside the functions: unpickling or loading a table this engine wrote must not pay
for it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from automl_orchestra.contracts.errors import StepError
from automl_orchestra.contracts.parameters import MethodBody
from automl_orchestra.engines.core.base import Engine, StepContext, StepResult
from automl_orchestra.engines.core.calls import method_kwargs
from automl_orchestra.engines.core.values import write_json
from automl_orchestra.engines.timeseries.ingest import LABEL_COLUMN

SETTINGS_FILE = "feature_settings.json"
NAMED_SETTINGS = ("minimal", "efficient", "comprehensive")
# Below this many series a process pool costs more than it saves.
MIN_SERIES_FOR_POOL = 64
# When no feature passes tsfresh's FDR test (tiny or noisy data) the most relevant ones are kept instead of
# failing: a model on few good features beats no model.
FALLBACK_FEATURES = 20
METHODS = ("extract_features", "select_features", "impute")


class TsfreshEngine(Engine):
    name = "tsfresh"

    def transform(self, ctx: StepContext) -> StepResult:
        request = ctx.request_as(MethodBody)
        method = request.method or "extract_features"
        if method not in METHODS:
            raise StepError(f"method {method!r} is not one of {list(METHODS)}")
        frame = ctx.load_step(request.parentName)
        if not isinstance(frame, pd.DataFrame):
            raise StepError(f"parentName must be a dataset (table), not {type(frame).__name__}")
        kwargs = method_kwargs(ctx)
        if method == "extract_features":
            return extract(ctx, frame, kwargs)
        if method == "select_features":
            return select(ctx, frame, kwargs)
        return StepResult(value=impute_features(frame), metadata={"method": "impute", "features": frame.shape[1] - 1})


# ----- extract_features -----------------------------------------------------------------------------


def extract(ctx: StepContext, frame: pd.DataFrame, kwargs: dict[str, Any]) -> StepResult:
    from tsfresh import extract_features

    column_id = str(kwargs.pop("column_id", "id"))
    column_sort = kwargs.pop("column_sort", "time")
    for name in (column_id, column_sort):
        if name is not None and name not in frame.columns:
            raise StepError(f"column {name!r} is not in the time-series table: {list(frame.columns)[:20]}")
    impute = bool(kwargs.pop("impute", True))
    reference = kwargs.pop("featureSettings", None)
    settings_name, fc_arguments, order = _feature_settings(kwargs, reference)
    series = int(frame[column_id].nunique())
    features = extract_features(
        frame,
        column_id=column_id,
        column_sort=column_sort,
        n_jobs=ctx.cpus if ctx.cpus > 1 and series >= MIN_SERIES_FOR_POOL else 0,
        disable_progressbar=True,
        **fc_arguments,
        **kwargs,
    )
    if order is not None:
        # Same columns, same order as the reference; a feature tsfresh could not compute here is NaN.
        features = features.reindex(columns=order)
    if impute:
        features = impute_features(features)
    computed = _settings_of(features.columns)
    write_json(ctx.output_dir / SETTINGS_FILE, computed)
    features = features.rename_axis("id").reset_index()
    metadata = {
        "method": "extract_features",
        "settings": settings_name,
        "series": series,
        "features": features.shape[1] - 1,
        "featureSettingsFile": SETTINGS_FILE,
        "featureSettings": computed if features.shape[1] <= 400 else f"{features.shape[1] - 1} features, see file",
    }
    return StepResult(value=features, metadata=metadata, metrics={"features": features.shape[1] - 1})


def _feature_settings(kwargs: dict[str, Any], reference: Any) -> tuple[str, dict[str, Any], list[str] | None]:
    """(a name for metadata, extract_features arguments, the column order to reproduce or None)."""
    if reference is not None:
        columns = _feature_columns(reference)
        if not columns:
            raise StepError("featureSettings: the referenced table has no tsfresh feature column (kind__feature)")
        return "from reference", {"kind_to_fc_parameters": _settings_of(columns)}, columns
    explicit = kwargs.pop("kind_to_fc_parameters", None)
    default = kwargs.pop("default_fc_parameters", "efficient")
    if explicit is not None:
        if not isinstance(explicit, dict):
            raise StepError("kind_to_fc_parameters must map a channel to {feature: parameters}")
        return "explicit per channel", {"kind_to_fc_parameters": explicit}, None
    if isinstance(default, dict):
        return "explicit", {"default_fc_parameters": default}, None
    return str(default), {"default_fc_parameters": named_settings(default)}, None


def named_settings(name: Any) -> Any:
    from tsfresh.feature_extraction import ComprehensiveFCParameters, EfficientFCParameters, MinimalFCParameters

    classes = {
        "minimal": MinimalFCParameters,
        "efficient": EfficientFCParameters,
        "comprehensive": ComprehensiveFCParameters,
    }
    if name not in classes:
        raise StepError(f"default_fc_parameters {name!r} is not one of {list(NAMED_SETTINGS)} or a feature dict")
    return classes[name]()


def _feature_columns(reference: Any) -> list[str]:
    columns = reference.columns if isinstance(reference, pd.DataFrame) else reference
    if isinstance(columns, dict):  # a stored feature_settings.json / metadata dict
        return []
    return [str(name) for name in columns if "__" in str(name)]


def _settings_of(columns: Any) -> dict[str, Any]:
    from tsfresh.feature_extraction.settings import from_columns

    settings: dict[str, Any] = from_columns([name for name in map(str, columns) if "__" in name])
    return settings


def impute_features(frame: pd.DataFrame) -> pd.DataFrame:
    """tsfresh's impute (inf -> max/min, NaN -> median, all-NaN -> 0) on the numeric columns only."""
    from tsfresh.utilities.dataframe_functions import impute

    numeric = [name for name in frame.columns if name != "id" and pd.api.types.is_numeric_dtype(frame[name])]
    result = frame.copy()
    if numeric:
        block = result[numeric].astype("float64")
        result[numeric] = impute(block)
    return result


# ----- select_features ------------------------------------------------------------------------------


def select(ctx: StepContext, frame: pd.DataFrame, kwargs: dict[str, Any]) -> StepResult:
    """Relevant features of ``frame`` for the labels ``y``; the output also holds ``id`` and the label."""
    from tsfresh.feature_selection.relevance import calculate_relevance_table

    label_column = str(kwargs.pop("labelColumn", LABEL_COLUMN))
    keep_all = bool(kwargs.pop("keep_all", False))  # only join the labels (a pipeline without selection)
    labels = _aligned_labels(frame, kwargs.pop("y", None), label_column)
    features = impute_features(frame.drop(columns=["id"], errors="ignore"))
    if keep_all:
        return _with_labels(frame, features, list(features.columns), labels, label_column, fallback=False)
    classes = labels.nunique()
    table = calculate_relevance_table(
        features,
        labels.reset_index(drop=True).set_axis(features.index),
        n_jobs=0,  # one test per feature: fast, and a pool would cost more than it saves
        multiclass=bool(kwargs.pop("multiclass", classes > 2)),
        **kwargs,
    )
    relevant = [str(name) for name in table.index[table["relevant"]]]
    fallback = not relevant
    if fallback:
        ranked = table.sort_values("p_value" if "p_value" in table.columns else table.columns[-1])
        relevant = [str(name) for name in ranked.index[:FALLBACK_FEATURES]]
        print(f"no feature passed the FDR test; keeping the {len(relevant)} lowest p-values", flush=True)
    selected = [name for name in features.columns if name in set(relevant)]
    return _with_labels(frame, features, selected, labels, label_column, fallback=fallback)


def _with_labels(
    frame: pd.DataFrame,
    features: pd.DataFrame,
    selected: list[str],
    labels: pd.Series,
    label_column: str,
    *,
    fallback: bool,
) -> StepResult:
    result = pd.concat([frame[["id"]], features[selected], labels.rename(label_column).set_axis(frame.index)], axis=1)
    metadata = {
        "method": "select_features",
        "features": len(selected),
        "candidates": features.shape[1],
        "fallback": fallback,
        "labelColumn": label_column,
    }
    return StepResult(value=result, metadata=metadata, metrics={"features": len(selected)})


def _aligned_labels(frame: pd.DataFrame, y: Any, label_column: str) -> pd.Series:
    """The labels in the row order of ``frame``: a table with ``id`` and a label column is joined by id."""
    if y is None:
        raise StepError("select_features needs methodParameters 'y': a labels table (id, label) or a column")
    if isinstance(y, pd.DataFrame) and "id" in y.columns and "id" in frame.columns:
        column = label_column if label_column in y.columns else next((c for c in y.columns if c != "id"), None)
        if column is None:
            raise StepError("the labels table needs a label column besides 'id'")
        mapping = y.set_index(y["id"].astype(str))[column]
        if mapping.index.duplicated().any():
            raise StepError("the labels table has duplicate ids")
        ids = frame["id"].astype(str)
        missing = sorted(set(ids) - set(mapping.index))
        if missing:
            raise StepError(f"{len(missing)} series have no label, e.g. ids {missing[:5]}")
        return mapping.loc[ids].reset_index(drop=True)
    series = y.iloc[:, 0] if isinstance(y, pd.DataFrame) else pd.Series(np.asarray(y))
    if len(series) != len(frame):
        raise StepError(f"y has {len(series)} values for {len(frame)} series")
    return series.reset_index(drop=True)
