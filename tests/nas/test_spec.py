"""The open model spec: schema validation with clear messages, versions, shape inference, and parameter
counts that agree with the network PyTorch builds."""

from __future__ import annotations

import random
from typing import Any

import pytest

from automl_orchestra.nas import spec as model_spec
from automl_orchestra.nas.space import SearchSpace
from automl_orchestra.nas.torch_model import build, count_parameters


def image_spec(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "specVersion": 1,
        "input": {"shape": [1, 8, 8]},
        "output": {"classes": 10},
        "layers": [
            {"type": "conv2d", "filters": 4, "kernel": 3, "batchNorm": True},
            {"type": "cell", "residual": True, "layers": [{"type": "conv2d", "filters": 4, "kernel": 3}]},
            {"type": "pool", "size": 2},
            {"type": "flatten"},
            {"type": "dropout", "rate": 0.1},
            {"type": "dense", "units": 16, "activation": "gelu", "batchNorm": True},
        ],
    }
    spec.update(changes)
    return spec


def test_valid_spec_gets_control_defaults_and_an_exact_footprint() -> None:
    spec = model_spec.validate(image_spec())
    assert spec["control"]["epochs"] == 2 and spec["control"]["optimizer"] == "adam"
    footprint = model_spec.footprint(spec)
    conv1 = 1 * 4 * 9 + 4 + 8  # weights, bias, batch norm scale and shift
    conv2 = 4 * 4 * 9 + 4
    dense = 64 * 16 + 16 + 32
    head = 16 * 10 + 10
    assert footprint.parameters == conv1 + conv2 + dense + head == count_parameters(build(spec))
    assert footprint.multiply_adds == 64 * 4 * 9 + 64 * 4 * 36 + 64 * 16 + 160
    assert footprint.output_shape == (10,)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"specVersion": 2}, "specVersion 2 is not supported"),
        ({"input": {"shape": []}}, "invalid model spec at input/shape"),
        ({"layers": [{"type": "conv2d", "filters": 4}]}, "layer 'conv2d' is unknown or has wrong/missing fields"),
        ({"layers": [{"type": "dense", "units": 4}]}, "layers/0: dense needs a flat input"),
        ({"layers": [{"type": "pool", "size": 4}] * 2}, "layers/1: pool of size 4 does not fit the input"),
        (
            {"layers": [{"type": "cell", "residual": True, "layers": [{"type": "conv2d", "filters": 5, "kernel": 3}]}]},
            "a residual cell must keep its input shape",
        ),
        ({"control": {"optimizer": "lbfgs"}}, "invalid model spec at control/optimizer"),
    ],
)
def test_invalid_specs_are_refused_with_the_place(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(model_spec.SpecError, match=message):
        model_spec.validate(image_spec(**changes))


def test_spec_without_version_is_refused() -> None:
    spec = image_spec()
    del spec["specVersion"]
    with pytest.raises(model_spec.SpecError, match="needs 'specVersion'"):
        model_spec.validate(spec)


@pytest.mark.parametrize("space", [SearchSpace("image", (1, 28, 28), 10), SearchSpace("tabular", (14,), 2)])
def test_every_decoded_genome_is_valid_and_counted_like_torch(space: SearchSpace) -> None:
    rng = random.Random(0)
    for _ in range(25):
        spec = model_spec.validate(space.decode(space.sample(rng)))
        assert model_spec.footprint(spec).parameters == count_parameters(build(spec))
