"""Training with the PyTorch stub on real data (digits images, a tabular table), the ONNX export agreeing
with PyTorch to 1e-4 on the test split, and constraints on the instrumentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_digits

from automl_orchestra.engines.core.serving import NotServable
from automl_orchestra.engines.nas.serving import ServedNetwork
from automl_orchestra.nas import instrument, trainer
from automl_orchestra.nas.constraints import Constraints
from automl_orchestra.nas.data import DataError, DataSettings, load, prepare_inputs
from automl_orchestra.nas.network import TrainedNetwork
from automl_orchestra.nas.spec import validate
from automl_orchestra.nas.torch_model import build, device

CNN = {
    "specVersion": 1,
    "input": {"shape": [1, 8, 8]},
    "output": {"classes": 10},
    "layers": [
        {"type": "conv2d", "filters": 8, "kernel": 3, "batchNorm": True},
        {"type": "pool", "mode": "avg"},
        {"type": "globalPool", "mode": "max"},
        {"type": "dense", "units": 32},
    ],
    "control": {"epochs": 3, "batchSize": 32, "learningRate": 0.01, "schedule": "cosine"},
}


def test_cnn_on_digits_learns_and_onnx_agrees_with_torch(tmp_path: Path) -> None:
    digits = load_digits()
    settings = DataSettings(seed=0)
    split = load({"x": (digits.images / 16).astype(np.float32), "y": digits.target}, settings)
    spec = validate(CNN)
    module, curves = trainer.train(spec, split, seed=0)
    assert [c["epoch"] for c in curves] == [1, 2, 3] and curves[-1]["validAccuracy"] > 0.5
    network = TrainedNetwork(spec, trainer.weights_of(module), settings.to_json(), split.classes, curves)
    restored = trainer.restore(network)
    logits = trainer.predict_logits(restored, split.x_test)
    assert np.array_equal(logits, trainer.predict_logits(module, split.x_test))
    trainer.export_onnx(restored, split.input_shape, tmp_path / "model.onnx")
    assert np.abs(trainer.onnx_logits(tmp_path / "model.onnx", split.x_test, 1) - logits).max() < 1e-4


def test_mlp_on_a_table_with_text_columns() -> None:
    frame = load_breast_cancer(as_frame=True).frame
    frame["size"] = np.where(frame["mean radius"] > 14, "large", "small")  # a text column, one-hot encoded
    split = load(frame, DataSettings(target="target", test_size=0.25, seed=2))
    assert split.kind == "tabular" and split.input_shape == (32,) and split.classes == ["0", "1"]
    spec = validate(
        {
            "specVersion": 1,
            "input": {"shape": list(split.input_shape)},
            "output": {"classes": 2},
            "layers": [{"type": "dense", "units": 16, "batchNorm": True}, {"type": "dropout", "rate": 0.1}],
            "control": {"epochs": 5, "batchSize": 32, "optimizer": "sgd", "learningRate": 0.05, "schedule": "step"},
        }
    )
    module, _curves = trainer.train(spec, split, seed=0)
    _loss, accuracy = trainer.evaluate(module, split.x_test, split.y_test)
    assert accuracy > 0.9


def test_the_preprocessing_recipe_makes_new_rows_into_the_networks_inputs() -> None:
    """What a served network applies to new rows gives exactly the inputs the split trained and tested on: a
    table (medians for missing numbers, one-hot text, training standardisation) and uint8 images (scaled)."""
    frame = load_breast_cancer(as_frame=True).frame
    frame["size"] = np.where(frame["mean radius"] > 14, "large", "small")
    frame.loc[::9, "mean texture"] = np.nan
    frame.loc[::11, "size"] = None
    split = load(frame, DataSettings(target="target", test_size=0.25, seed=2))
    order = np.random.default_rng(2).permutation(len(frame))
    test_rows = frame.drop(columns=["target"]).iloc[order[: len(split.y_test)]]
    assert np.allclose(prepare_inputs(split.preprocessing, test_rows), split.x_test, atol=1e-5)
    assert split.preprocessing["levels"] == {"size": ["(missing)", "large", "small"]}

    images = (load_digits().images * 15).astype(np.uint8)
    split = load({"x": images, "y": load_digits().target}, DataSettings(seed=0))
    order = np.random.default_rng(0).permutation(len(images))
    flat = images[order[: len(split.y_test)]].reshape(len(split.y_test), -1)
    assert split.preprocessing["scale"] == 255.0 and split.preprocessing["shape"] == [1, 8, 8]
    assert np.array_equal(prepare_inputs(split.preprocessing, flat), split.x_test)


def test_a_network_that_cannot_serve_says_why() -> None:
    spec = validate(CNN)
    network = TrainedNetwork(spec, {"w": np.zeros(1)}, DataSettings().to_json(), ["0", "1"])
    with pytest.raises(NotServable, match="re-run its nas/train step"):
        ServedNetwork(network)  # stored before the preprocessing was kept with networks
    network.rejected = "parameters 10410 > maxParameters 1000"
    with pytest.raises(NotServable, match="rejected before training"):
        ServedNetwork(network)


def test_data_errors_are_clear() -> None:
    with pytest.raises(DataError, match="target 'nope' is not a column"):
        load(pd.DataFrame({"a": [1, 2, 3, 4]}), DataSettings(target="nope"))
    with pytest.raises(DataError, match=r"inputShape \[1, 3, 3\] needs 9 values per sample, the data has 4"):
        load({"x": np.zeros((10, 4)), "y": np.arange(10) % 2}, DataSettings(input_shape=(1, 3, 3)))


def test_constraints_reject_or_penalise_from_instrumentation() -> None:
    spec = validate(CNN)
    module = build(spec).to(device())
    measured = {
        **instrument.static(spec, module),
        "latencyMsPerSample": instrument.latency_ms_per_sample(module, (1, 8, 8), device()),
    }
    assert measured["parameters"] == measured["specParameters"] and measured["latencyMsPerSample"] > 0
    reject = Constraints.from_json({"maxParameters": measured["parameters"] // 2})
    over = reject.violations(measured)
    assert over == {"maxParameters": pytest.approx(measured["parameters"] / (measured["parameters"] // 2) - 1)}
    assert reject.score(0.9, over) == 0.0
    penalize = Constraints.from_json({"maxParameters": measured["parameters"] // 2, "mode": "penalize", "penalty": 0.1})
    assert penalize.score(0.9, over) == pytest.approx(0.9 - 0.1 * over["maxParameters"])
    assert Constraints.from_json({"maxParameters": 10**9}).violations(measured) == {}
    with pytest.raises(ValueError, match="unknown constraint"):
        Constraints.from_json({"maxFlops": 1})
