"""Search spaces: a genome (a flat dict of categorical choices) and how it decodes into a model spec.

Generators only see genomes and choices, so every generator searches exactly the same networks: the
comparison measures the algorithm, not a different stem, head or prior (AMLA's fairness argument).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from automl_orchestra.nas.spec import SPEC_VERSION

Genome = dict[str, Any]

IMAGE_CHOICES: dict[str, list[Any]] = {
    "stages": [1, 2, 3],
    "filters1": [8, 16, 32],
    "filters2": [16, 32, 64],
    "filters3": [32, 64, 128],
    "convsPerStage": [1, 2],
    "kernel": [3, 5],
    "batchNorm": [0, 1],
    "residual": [0, 1],
    "reduce": ["flatten", "globalPool"],
    "head": [0, 64, 128],
    "dropout": [0.0, 0.25],
    "learningRate": [0.0003, 0.001, 0.003],
}
TABULAR_CHOICES: dict[str, list[Any]] = {
    "depth": [1, 2, 3, 4],
    "units": [16, 32, 64, 128, 256],
    "shrink": [0, 1],
    "activation": ["relu", "gelu", "tanh"],
    "batchNorm": [0, 1],
    "dropout": [0.0, 0.1, 0.3],
    "learningRate": [0.0003, 0.001, 0.003],
}


@dataclass(frozen=True)
class SearchSpace:
    kind: str  # "image" or "tabular"
    input_shape: tuple[int, ...]
    classes: int
    control: dict[str, Any] = field(default_factory=dict)  # fixed for every proposal (fair comparison)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SearchSpace:
        shape = tuple(int(v) for v in data["inputShape"])
        kind = data.get("kind") or ("image" if len(shape) >= 2 else "tabular")
        if kind not in ("image", "tabular"):
            raise ValueError(f"space.kind must be 'image' or 'tabular', got {kind!r}")
        return cls(kind, shape, int(data["classes"]), dict(data.get("control") or {}))

    def choices(self) -> dict[str, list[Any]]:
        return IMAGE_CHOICES if self.kind == "image" else TABULAR_CHOICES

    def sample(self, rng: random.Random) -> Genome:
        return {key: rng.choice(options) for key, options in self.choices().items()}

    def mutate(self, genome: Genome, rng: random.Random) -> Genome:
        """One key changed to another of its choices (the aging-evolution mutation)."""
        child = {**self.sample(rng), **genome}
        key = rng.choice(sorted(self.choices()))
        others = [value for value in self.choices()[key] if value != child.get(key)]
        if others:
            child[key] = rng.choice(others)
        return child

    def decode(self, genome: Genome) -> dict[str, Any]:
        layers = self._image_layers(genome) if self.kind == "image" else self._tabular_layers(genome)
        control = {**self.control, "learningRate": float(genome["learningRate"])}
        return {
            "specVersion": SPEC_VERSION,
            "input": {"shape": list(self.input_shape)},
            "output": {"classes": self.classes},
            "layers": layers,
            "control": control,
        }

    def _image_layers(self, genome: Genome) -> list[dict[str, Any]]:
        layers: list[dict[str, Any]] = []
        size = min(self.input_shape[-2:])
        kernel, norm = int(genome["kernel"]), bool(genome["batchNorm"])
        for stage in range(1, int(genome["stages"]) + 1):
            filters = int(genome[f"filters{stage}"])
            layers.append({"type": "conv2d", "filters": filters, "kernel": kernel, "batchNorm": norm})
            if int(genome["convsPerStage"]) == 2:
                conv = {"type": "conv2d", "filters": filters, "kernel": kernel, "batchNorm": norm}
                layers.append({"type": "cell", "residual": bool(genome["residual"]), "layers": [conv]})
            if size >= 2:
                layers.append({"type": "pool", "mode": "max", "size": 2})
                size //= 2
        layers.append({"type": str(genome["reduce"])})
        if float(genome["dropout"]) > 0:
            layers.append({"type": "dropout", "rate": float(genome["dropout"])})
        if int(genome["head"]):
            layers.append({"type": "dense", "units": int(genome["head"]), "activation": "relu"})
        return layers

    def _tabular_layers(self, genome: Genome) -> list[dict[str, Any]]:
        layers: list[dict[str, Any]] = []
        if len(self.input_shape) > 1:
            layers.append({"type": "flatten"})
        units = int(genome["units"])
        for _ in range(int(genome["depth"])):
            layers.append(
                {
                    "type": "dense",
                    "units": units,
                    "activation": genome["activation"],
                    "batchNorm": bool(genome["batchNorm"]),
                }
            )
            if float(genome["dropout"]) > 0:
                layers.append({"type": "dropout", "rate": float(genome["dropout"])})
            units = max(8, units // 2) if int(genome["shrink"]) else units
        return layers
