"""The request of ``model/h2o``."""

from __future__ import annotations

from automl_orchestra.contracts.parameters import model_body_with_default

H2OModelBody = model_body_with_default(
    "H2OModelBody",
    "h2o.automl",
    "H2OAutoML",
    {"name": "titanic_h2o", "classParameters": {"max_models": 5, "seed": 1}},
    "``model/h2o``: ``H2OAutoML`` (the default) or an H2O estimator with ``classParameters``; ``train/h2o``"
    " builds and trains it in a JVM of its own.",
)
