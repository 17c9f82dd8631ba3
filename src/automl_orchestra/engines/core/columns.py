"""Which columns an ``automl`` step trains on: the same rules for every engine, each decision explained.

AutoML engines happily "learn" from a passenger id or a name column, overfit on it and report a great
validation score that never holds. The rules below remove such columns by default and record why, so the
user sees the decision in the step's metadata and can override it (``keepColumns``, ``autoExclude: false``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from automl_orchestra.contracts.errors import StepError

# Below this many rows "most values are distinct" is normal (5 rows, 4 distinct cities), not a sign of an id.
MIN_ROWS_FOR_RULES = 20
DISTINCT_RATIO = 0.5


@dataclass(frozen=True)
class ColumnDecision:
    used: list[str]
    excluded: dict[str, str]  # column -> reason

    def as_metadata(self) -> dict[str, object]:
        return {"used": list(self.used), "excluded": dict(self.excluded)}


def select_features(
    features: pd.DataFrame,
    *,
    auto_exclude: bool = True,
    exclude: Sequence[str] = (),
    keep: Sequence[str] = (),
) -> ColumnDecision:
    """Decide the feature columns of ``features`` (the target already removed).

    ``exclude`` always wins over the automatic rules' "keep"; ``keep`` always wins over the automatic rules'
    "exclude"; naming a column in both is an error, since either reading would surprise someone.
    """
    available = [str(column) for column in features.columns]
    _check_known("excludeColumns", exclude, available)
    _check_known("keepColumns", keep, available)
    both = sorted(set(exclude) & set(keep))
    if both:
        raise StepError(f"column(s) {both} are listed in both excludeColumns and keepColumns")
    excluded: dict[str, str] = {name: "listed in excludeColumns" for name in exclude}
    if auto_exclude:
        for name in available:
            if name in excluded or name in keep:
                continue
            reason = exclusion_reason(features[name])
            if reason:
                excluded[name] = reason
    used = [name for name in available if name not in excluded]
    if not used:
        raise StepError(
            f"no feature column is left after excluding {excluded}; "
            "list the columns to use in keepColumns or set autoExclude to false"
        )
    return ColumnDecision(used=used, excluded=excluded)


def exclusion_reason(column: pd.Series) -> str | None:
    """Why a column should not be a feature, or None. Rules, in order:

    * every value missing;
    * an integer column holding a gapless run of distinct values (1..n): a row id such as PassengerId;
    * a text/categorical column whose distinct values are at least half its non-missing values (or half the
      rows, when fewer than 20 values are present): ids, names, free text, and sparse codes such as Titanic's
      Cabin -- encoders that target-encode such columns (PyCaret) leak the label on the training folds.
    """
    rows = len(column)
    present = column.dropna()
    if rows and present.empty:
        return "every value is missing"
    if rows < MIN_ROWS_FOR_RULES:
        return None
    distinct = int(present.nunique())
    if pd.api.types.is_integer_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column.dtype):
        if distinct == rows and int(present.max()) - int(present.min()) + 1 == rows:
            return f"identifier: a sequence of {rows} distinct integers from {present.min()} to {present.max()}"
        return None
    if not _is_text_like(column):
        return None
    if distinct / rows >= DISTINCT_RATIO:
        return f"identifier or free text: {distinct} distinct values in {rows} rows"
    if len(present) >= MIN_ROWS_FOR_RULES and distinct / len(present) >= DISTINCT_RATIO:
        return f"identifier or free text: {distinct} distinct values in its {len(present)} non-missing rows"
    return None


def _is_text_like(column: pd.Series) -> bool:
    dtype = column.dtype
    return bool(
        pd.api.types.is_object_dtype(dtype)
        or pd.api.types.is_string_dtype(dtype)
        or isinstance(dtype, pd.CategoricalDtype)
    )


def as_categories(frame: pd.DataFrame, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """``frame`` with its text columns (or ``columns``) as pandas categoricals, as tree learners expect.

    Returns a shallow copy; the caller's frame is left as it was.
    """
    names = list(columns) if columns is not None else text_columns(frame)
    if not names:
        return frame
    result = frame.copy(deep=False)
    for name in names:
        result[name] = result[name].astype("category")
    return result


def text_columns(frame: pd.DataFrame) -> list[str]:
    """Text and categorical columns: the ones a model needs as categories, whatever dtype they arrive in."""
    return [str(name) for name in frame.columns if _is_text_like(frame[name])]


def _check_known(parameter: str, names: Sequence[str], available: list[str]) -> None:
    unknown = [name for name in names if name not in available]
    if unknown:
        raise StepError(f"{parameter}: unknown column(s) {unknown}; available: {available}")
