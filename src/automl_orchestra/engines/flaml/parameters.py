"""The request of ``model/flaml``."""

from __future__ import annotations

from automl_orchestra.contracts.parameters import model_body_with_default

FlamlModelBody = model_body_with_default(
    "FlamlModelBody",
    "flaml",
    "AutoML",
    {"name": "flaml_automl", "classParameters": {"metric": "accuracy", "estimator_list": ["lgbm", "rf"], "seed": 1}},
    "``model/flaml``: FLAML's ``AutoML`` (the default) with ``classParameters``; ``train/flaml`` fits it.",
)
