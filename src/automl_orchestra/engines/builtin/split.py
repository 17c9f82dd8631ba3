"""The ``split`` tool: ``transform/split`` divides a table into train rows (its output) and holdout rows (the
derived ``{name}_holdout`` dataset), seeded and stratified on the target for classification, so that
several steps (the engines of ``automl/compare``) train on exactly the same rows and are scored on the
same held-out ones."""

from __future__ import annotations

import pandas as pd

from automl_orchestra.contracts.errors import StepError
from automl_orchestra.engines.builtin.parameters import SplitBody
from automl_orchestra.engines.core.base import Engine, StepContext, StepResult

MIN_CLASS_ROWS = 2  # stratification needs every class at least twice
MIN_HOLDOUT = 0.01


def split_rows(
    frame: pd.DataFrame, fraction: float, seed: int, target: str | None, stratify: bool
) -> tuple[pd.DataFrame, pd.DataFrame]:
    from sklearn.model_selection import train_test_split

    labels = None
    if stratify and target is not None:
        counts = frame[target].value_counts()
        if (counts >= MIN_CLASS_ROWS).all():
            labels = frame[target]
        else:
            print(f"not stratifying: class(es) {list(counts[counts < MIN_CLASS_ROWS].index)[:5]} are too rare")
    train, holdout = train_test_split(frame, test_size=fraction, random_state=seed, stratify=labels)
    return train.reset_index(drop=True), holdout.reset_index(drop=True)


class SplitEngine(Engine):
    name = "split"

    def transform(self, ctx: StepContext) -> StepResult:
        request = ctx.request_as(SplitBody)
        frame = ctx.load_step(request.parentName)
        if not isinstance(frame, pd.DataFrame):
            raise StepError(f"step {request.parentName!r} is not a dataset (table)")
        target = request.target
        if target is not None and target not in frame.columns:
            raise StepError(f"target {target!r} is not a column of {request.parentName!r}")
        if target is not None:
            frame = frame[frame[target].notna()]  # rows without a target can neither train nor score
        fraction = request.holdout
        if fraction < MIN_HOLDOUT:
            raise StepError(f"parameter 'holdout' must be at least {MIN_HOLDOUT}")
        if len(frame) * fraction < 1 or len(frame) * (1 - fraction) < 2:
            raise StepError(f"holdout {fraction:g} of {len(frame)} rows leaves no train or no holdout rows")
        stratify = request.stratify and request.task == "classification"
        train, holdout = split_rows(frame, fraction, request.seed, target, stratify)
        metadata = {"trainRows": len(train), "holdoutRows": len(holdout), "holdout": fraction, "seed": request.seed}
        return StepResult(value=train, metadata=metadata, derived={"holdout": holdout})
