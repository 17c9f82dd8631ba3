"""The PyTorch stub: a validated model spec becomes an ``nn.Module`` (CPU here, CUDA when present)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from automl_orchestra.nas.spec import input_shape


class Residual(nn.Module):
    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def build(spec: dict[str, Any]) -> nn.Module:
    """The network of a validated spec, classifier head included (it outputs logits)."""
    shape = input_shape(spec)
    layers, shape = _layers(spec["layers"], shape)
    if len(shape) != 1:
        layers.append(nn.Flatten())
    layers.append(nn.Linear(_flat(shape), int(spec["output"]["classes"])))
    return nn.Sequential(*layers)


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _layers(specs: list[dict[str, Any]], shape: tuple[int, ...]) -> tuple[list[nn.Module], tuple[int, ...]]:
    modules: list[nn.Module] = []
    for layer in specs:
        built, shape = _layer(layer, shape)
        modules.extend(built)
    return modules, shape


def _layer(layer: dict[str, Any], shape: tuple[int, ...]) -> tuple[list[nn.Module], tuple[int, ...]]:
    kind = layer["type"]
    if kind == "conv2d":
        kernel, stride, filters = layer["kernel"], layer.get("stride", 1), layer["filters"]
        conv = nn.Conv2d(shape[0], filters, kernel, stride=stride, padding=kernel // 2)
        height = (shape[1] + 2 * (kernel // 2) - kernel) // stride + 1
        width = (shape[2] + 2 * (kernel // 2) - kernel) // stride + 1
        norm: list[nn.Module] = [nn.BatchNorm2d(filters)] if layer.get("batchNorm") else []
        return [conv, *norm, *_activation(layer.get("activation", "relu"))], (filters, height, width)
    if kind == "pool":
        size = layer.get("size", 2)
        pool: nn.Module = nn.MaxPool2d(size) if layer.get("mode", "max") == "max" else nn.AvgPool2d(size)
        return [pool], (shape[0], shape[1] // size, shape[2] // size)
    if kind == "globalPool":
        global_pool: nn.Module = (
            nn.AdaptiveMaxPool2d(1) if layer.get("mode", "avg") == "max" else nn.AdaptiveAvgPool2d(1)
        )
        return [global_pool, nn.Flatten()], (shape[0],)
    if kind == "flatten":
        return [nn.Flatten()], (_flat(shape),)
    if kind == "dense":
        units = layer["units"]
        dense_norm: list[nn.Module] = [nn.BatchNorm1d(units)] if layer.get("batchNorm") else []
        return [nn.Linear(shape[0], units), *dense_norm, *_activation(layer.get("activation", "relu"))], (units,)
    if kind == "dropout":
        return [nn.Dropout(layer["rate"])], shape
    if kind == "cell":
        body, out = _layers(layer["layers"], shape)
        sequence = nn.Sequential(*body)
        return [Residual(sequence) if layer.get("residual") else sequence], out
    raise ValueError(f"unknown layer type {kind!r}")  # validate() refuses it first


def _activation(name: str) -> list[nn.Module]:
    table: dict[str, type[nn.Module]] = {
        "relu": nn.ReLU,
        "gelu": nn.GELU,
        "tanh": nn.Tanh,
        "sigmoid": nn.Sigmoid,
        "elu": nn.ELU,
    }
    return [table[name]()] if name in table else []


def _flat(shape: tuple[int, ...]) -> int:
    total = 1
    for value in shape:
        total *= value
    return total
