"""The request of ``model/flaml``."""

from __future__ import annotations

from automl_orchestra.contracts.parameters import model_body_with_default

FlamlModelBody = model_body_with_default(
    "FlamlModelBody",
    "flaml",
    "AutoML",
    {"name": "iris_automl", "classParameters": {"estimator_list": ["lgbm"]}},
    "``model/flaml``: FLAML's ``AutoML`` (the default) with ``classParameters``; ``train/flaml`` fits it.",
)
