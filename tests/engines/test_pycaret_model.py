"""The stored automl/pycaret model answers predict_proba also when PyCaret's winner has no probabilities
(RidgeClassifier and a linear SVM win by AUC, which PyCaret computes from their decision function)."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import RidgeClassifier
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from automl_orchestra.engines.core.model import probabilities_from_decision
from automl_orchestra.engines.pycaret.engine import PycaretModel


def test_a_winner_without_predict_proba_scores_from_its_decision_function() -> None:
    data = load_breast_cancer(as_frame=True)
    X, y = data.data, data.target
    pipeline = Pipeline([("scale", StandardScaler()), ("ridge", RidgeClassifier())]).fit(X, y)
    model = PycaretModel.trained_on(pipeline, X, "target", "classification")

    proba = model.predict_proba(X)

    assert proba.shape == (len(X), 2) and np.allclose(proba.sum(axis=1), 1.0)
    assert ((proba[:, 1] > 0.5).astype(int) == model.predict(X)).all()  # the model's own classes
    assert roc_auc_score(y, proba[:, 1]) == roc_auc_score(y, pipeline.decision_function(X))


def test_multiclass_margins_become_a_softmax() -> None:
    margins = np.array([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    proba = probabilities_from_decision(margins)
    assert np.allclose(proba.sum(axis=1), 1.0) and proba[0].argmax() == 0 and np.allclose(proba[1], 1 / 3)
