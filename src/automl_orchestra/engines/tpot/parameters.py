"""The request of ``model/tpot``."""

from __future__ import annotations

from automl_orchestra.contracts.parameters import model_body_with_default

TpotModelBody = model_body_with_default(
    "TpotModelBody",
    "tpot",
    "TPOTClassifier",
    {"name": "titanic_tpot", "classParameters": {"random_state": 1}},
    "``model/tpot``: ``TPOTClassifier`` (the default), another TPOT estimator or a scikit-learn one.",
)
