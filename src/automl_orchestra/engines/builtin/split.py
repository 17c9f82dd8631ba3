"""The ``split`` tool: ``transform/split`` divides a table into train rows (its output) and holdout rows (the
derived ``{name}_holdout`` dataset), seeded and stratified on the target for classification, so that
several steps (the engines of ``automl/compare``) train on exactly the same rows and are scored on the
same held-out ones."""

from __future__ import annotations

import pandas as pd

from automl_orchestra.contracts.errors import StepError
from automl_orchestra.engines.core import params as p
from automl_orchestra.engines.core.base import Engine, StepContext, StepResult

MIN_CLASS_ROWS = 2  # stratification needs every class at least twice


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
        parent = p.require_str(ctx.params, "parentName")
        frame = ctx.load_step(parent)
        if not isinstance(frame, pd.DataFrame):
            raise StepError(f"step {parent!r} is not a dataset (table)")
        target = p.optional_str(ctx.params, "target")
        if target is not None and target not in frame.columns:
            raise StepError(f"target {target!r} is not a column of {parent!r}")
        if target is not None:
            frame = frame[frame[target].notna()]  # rows without a target can neither train nor score
        fraction = p.optional_number(ctx.params, "holdout", 0.2, minimum=0.01)
        if fraction >= 1.0 or len(frame) * fraction < 1 or len(frame) * (1 - fraction) < 2:
            raise StepError(f"holdout {fraction:g} of {len(frame)} rows leaves no train or no holdout rows")
        seed = p.optional_int(ctx.params, "seed", 1)
        stratify = p.optional_bool(ctx.params, "stratify", True)
        task = p.optional_str(ctx.params, "task", "classification")
        train, holdout = split_rows(frame, fraction, seed, target, stratify and task == "classification")
        metadata = {"trainRows": len(train), "holdoutRows": len(holdout), "holdout": fraction, "seed": seed}
        return StepResult(value=train, metadata=metadata, derived={"holdout": holdout})
