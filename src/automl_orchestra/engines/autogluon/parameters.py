"""The request of ``model/autogluon``."""

from __future__ import annotations

from automl_orchestra.contracts.parameters import model_body_with_default

AutoGluonModelBody = model_body_with_default(
    "AutoGluonModelBody",
    "autogluon.tabular",
    "TabularPredictor",
    {"name": "titanic_predictor", "classParameters": {"label": "Survived"}},
    "``model/autogluon``: a ``TabularPredictor`` (the default) with ``classParameters`` (``label`` required);"
    " ``train/autogluon`` builds and fits it in its own output.",
)
