"""The open model specification (JSON): a network as a graph of layers and cells with its control parameters,
independent of any ML library. Validation is a JSON Schema plus shape inference (a spec whose shapes do not
chain is refused before any library sees it). Versioned by ``specVersion``; documented in ``docs/nas.md``.

Shape inference here also yields the library-independent instrumentation (parameter count, multiply-adds)
that constraints are checked against before a network is trained.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import jsonschema

SPEC_VERSION = 1
ACTIVATIONS = ("relu", "gelu", "tanh", "sigmoid", "elu", "none")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine", "step")

DEFAULT_CONTROL: dict[str, Any] = {
    "epochs": 2,
    "batchSize": 64,
    "optimizer": "adam",
    "learningRate": 0.001,
    "momentum": 0.9,
    "weightDecay": 0.0,
    "schedule": "constant",
    "maxSeconds": None,
}

_ACTIVATION = {"enum": list(ACTIVATIONS)}
_LAYER_SCHEMAS: list[dict[str, Any]] = [
    {
        "properties": {
            "type": {"const": "conv2d"},
            "filters": {"type": "integer", "minimum": 1, "maximum": 1024},
            "kernel": {"type": "integer", "minimum": 1, "maximum": 11},
            "stride": {"type": "integer", "minimum": 1, "maximum": 4},
            "activation": _ACTIVATION,
            "batchNorm": {"type": "boolean"},
        },
        "required": ["type", "filters", "kernel"],
    },
    {
        "properties": {
            "type": {"const": "pool"},
            "mode": {"enum": ["max", "avg"]},
            "size": {"type": "integer", "minimum": 2, "maximum": 8},
        },
        "required": ["type"],
    },
    {
        "properties": {"type": {"const": "globalPool"}, "mode": {"enum": ["max", "avg"]}},
        "required": ["type"],
    },
    {"properties": {"type": {"const": "flatten"}}, "required": ["type"]},
    {
        "properties": {
            "type": {"const": "dense"},
            "units": {"type": "integer", "minimum": 1, "maximum": 65536},
            "activation": _ACTIVATION,
            "batchNorm": {"type": "boolean"},
        },
        "required": ["type", "units"],
    },
    {
        "properties": {"type": {"const": "dropout"}, "rate": {"type": "number", "minimum": 0, "exclusiveMaximum": 1}},
        "required": ["type", "rate"],
    },
    {
        # A cell: its layers run in sequence and, when ``residual``, their output is added to the cell's input.
        "properties": {
            "type": {"const": "cell"},
            "residual": {"type": "boolean"},
            "layers": {"type": "array", "items": {"$ref": "#/$defs/layer"}, "minItems": 1},
        },
        "required": ["type", "layers"],
    },
]
for _schema in _LAYER_SCHEMAS:
    _schema["type"] = "object"
    _schema["additionalProperties"] = False

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://automl-orchestra.invalid/nas/model-spec-1.json",
    "title": "AutoML Orchestra NAS model specification, version 1",
    "type": "object",
    "additionalProperties": False,
    "required": ["specVersion", "input", "output", "layers"],
    "properties": {
        "specVersion": {"const": SPEC_VERSION},
        "name": {"type": "string", "maxLength": 200},
        "input": {
            "type": "object",
            "additionalProperties": False,
            "required": ["shape"],
            "properties": {
                "shape": {
                    "type": "array",
                    "items": {"type": "integer", "minimum": 1, "maximum": 100000},
                    "minItems": 1,
                    "maxItems": 3,
                }
            },
        },
        "output": {
            "type": "object",
            "additionalProperties": False,
            "required": ["classes"],
            "properties": {"classes": {"type": "integer", "minimum": 2, "maximum": 100000}},
        },
        "layers": {"type": "array", "items": {"$ref": "#/$defs/layer"}, "maxItems": 200},
        "control": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "epochs": {"type": "integer", "minimum": 1, "maximum": 1000},
                "batchSize": {"type": "integer", "minimum": 1, "maximum": 65536},
                "optimizer": {"enum": list(OPTIMIZERS)},
                "learningRate": {"type": "number", "exclusiveMinimum": 0, "maximum": 10},
                "momentum": {"type": "number", "minimum": 0, "maximum": 1},
                "weightDecay": {"type": "number", "minimum": 0, "maximum": 1},
                "schedule": {"enum": list(SCHEDULES)},
                "maxSeconds": {"type": ["number", "null"], "exclusiveMinimum": 0},
            },
        },
        "origin": {"type": "object", "description": "who proposed it: generator, genome, trial (free-form)"},
    },
    "$defs": {"layer": {"oneOf": _LAYER_SCHEMAS}},
}

_VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


class SpecError(ValueError):
    """A model specification that is malformed or whose shapes do not chain; the message says where."""


@dataclass(frozen=True)
class Footprint:
    """What shape inference learns about a spec: its output shape and its cost, library-independent."""

    parameters: int
    multiply_adds: int
    activations: int  # values produced by all layers for one sample (a proxy for activation memory)
    output_shape: tuple[int, ...]


def validate(spec: Any) -> dict[str, Any]:
    """A validated copy of ``spec`` with the control defaults filled in, or :class:`SpecError`."""
    if not isinstance(spec, dict):
        raise SpecError(f"a model spec is a JSON object, got {type(spec).__name__}")
    spec = upgrade(copy.deepcopy(spec))
    errors = sorted(_VALIDATOR.iter_errors(spec), key=lambda e: list(e.absolute_path))
    if errors:
        error = errors[0]
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        raise SpecError(f"invalid model spec at {where}: {_short(error)}")
    spec["control"] = {**DEFAULT_CONTROL, **spec.get("control", {})}
    footprint(spec)  # shapes must chain
    return spec


def upgrade(spec: dict[str, Any]) -> dict[str, Any]:
    """Bring an older spec to the current version (there is one version so far); refuse newer ones."""
    version = spec.get("specVersion")
    if version is None:
        raise SpecError("a model spec needs 'specVersion' (the current version is 1)")
    if not isinstance(version, int) or version > SPEC_VERSION or version < 1:
        raise SpecError(f"specVersion {version!r} is not supported (this server reads versions 1..{SPEC_VERSION})")
    return spec


def footprint(spec: dict[str, Any]) -> Footprint:
    """Walk the layers, inferring shapes; count parameters and multiply-adds (classifier head included)."""
    shape = tuple(spec["input"]["shape"])
    if len(shape) == 2:
        shape = (1, *shape)  # a single-channel image given as H x W
    counter = _Counter()
    shape = _walk(spec["layers"], shape, counter, "layers")
    features = _prod(shape)
    classes = int(spec["output"]["classes"])
    counter.add(features * classes + classes, features * classes, classes)
    return Footprint(counter.parameters, counter.macs, counter.activations, (classes,))


def input_shape(spec: dict[str, Any]) -> tuple[int, ...]:
    shape = tuple(int(v) for v in spec["input"]["shape"])
    return (1, *shape) if len(shape) == 2 else shape


class _Counter:
    def __init__(self) -> None:
        self.parameters = 0
        self.macs = 0
        self.activations = 0

    def add(self, parameters: int, macs: int, activations: int) -> None:
        self.parameters += parameters
        self.macs += macs
        self.activations += activations


def _walk(layers: list[dict[str, Any]], shape: tuple[int, ...], counter: _Counter, path: str) -> tuple[int, ...]:
    for index, layer in enumerate(layers):
        shape = _layer(layer, shape, counter, f"{path}/{index}")
    return shape


def _layer(layer: dict[str, Any], shape: tuple[int, ...], counter: _Counter, path: str) -> tuple[int, ...]:
    kind = layer["type"]
    if kind == "conv2d":
        channels, height, width = _image(shape, path, kind)
        filters, kernel, stride = layer["filters"], layer["kernel"], layer.get("stride", 1)
        pad = kernel // 2  # "same" padding: the output is the input divided by the stride
        out_h, out_w = (height + 2 * pad - kernel) // stride + 1, (width + 2 * pad - kernel) // stride + 1
        if out_h < 1 or out_w < 1:
            raise SpecError(f"{path}: conv2d with kernel {kernel} does not fit the input {list(shape)}")
        outputs = filters * out_h * out_w
        norm = 2 * filters if layer.get("batchNorm") else 0
        counter.add(
            channels * filters * kernel * kernel + filters + norm, outputs * channels * kernel * kernel, outputs
        )
        return (filters, out_h, out_w)
    if kind == "pool":
        channels, height, width = _image(shape, path, kind)
        size = layer.get("size", 2)
        if height < size or width < size:
            raise SpecError(f"{path}: pool of size {size} does not fit the input {list(shape)}")
        out = (channels, height // size, width // size)
        counter.add(0, 0, _prod(out))
        return out
    if kind == "globalPool":
        channels, _height, _width = _image(shape, path, kind)
        counter.add(0, 0, channels)
        return (channels,)
    if kind == "flatten":
        return (_prod(shape),)
    if kind == "dense":
        if len(shape) != 1:
            raise SpecError(f"{path}: dense needs a flat input, got {list(shape)}: add a flatten or globalPool layer")
        units = layer["units"]
        norm = 2 * units if layer.get("batchNorm") else 0
        counter.add(shape[0] * units + units + norm, shape[0] * units, units)
        return (units,)
    if kind == "dropout":
        return shape
    if kind == "cell":
        cell_out = _walk(layer["layers"], shape, counter, f"{path}/layers")
        if layer.get("residual") and cell_out != shape:
            raise SpecError(
                f"{path}: a residual cell must keep its input shape {list(shape)}, it makes {list(cell_out)}"
            )
        return cell_out
    raise SpecError(f"{path}: unknown layer type {kind!r}")


def _image(shape: tuple[int, ...], path: str, kind: str) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise SpecError(f"{path}: {kind} needs an image input (channels, height, width), got {list(shape)}")
    return shape[0], shape[1], shape[2]


def _prod(shape: tuple[int, ...]) -> int:
    total = 1
    for value in shape:
        total *= value
    return total


def _short(error: jsonschema.ValidationError) -> str:
    if error.validator == "oneOf" and isinstance(error.instance, dict):
        return f"layer {error.instance.get('type')!r} is unknown or has wrong/missing fields ({sorted(error.instance)})"
    return error.message[:300]
