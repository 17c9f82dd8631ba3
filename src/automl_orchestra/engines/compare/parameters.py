"""The request of ``automl/compare``."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from automl_orchestra.contracts.parameters import AutoMLBody


class CompareBody(AutoMLBody):
    """``automl/compare``: the same dataset through several automl engines (same split, metric, seed and
    budget each). ``options`` is keyed by engine. ``candidates`` / ``holdoutData`` / ``skipped`` are filled
    by the server when it expands the comparison into its steps."""

    example: ClassVar[dict[str, Any]] = {
        "name": "titanic_compare",
        "parentName": "titanic_train",
        "target": "Survived",
        "timeBudget": 60,
        "metric": "roc_auc",
        "engines": ["flaml", "autogluon", "h2o"],
    }

    engines: list[str] | None = Field(
        default=None, min_length=1, max_length=16, description="automl tools to compare (default: every installed)"
    )
    holdout: float = Field(default=0.2, gt=0.0, lt=1.0, description="share of rows held out to score every engine")
    candidates: dict[str, str] | None = Field(default=None, description="engine -> '$step' (set by the server)")
    holdoutData: str | None = Field(default=None, description="'$step' of the holdout rows (set by the server)")
    skipped: dict[str, str] | None = Field(default=None, description="engine -> why it was left out (server)")
