"""Resource constraints checked against the instrumentation: an over-budget network is rejected (not
trained, scored as failed) or penalised (trained, its score lowered by how far it is over), as configured."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

# constraint name -> the instrumentation key it bounds
LIMITS = {"maxParameters": "parameters", "maxMultiplyAdds": "multiplyAdds", "maxLatencyMs": "latencyMsPerSample"}
MODES = ("reject", "penalize")


@dataclass(frozen=True)
class Constraints:
    limits: dict[str, float]
    mode: Literal["reject", "penalize"] = "reject"
    penalty: float = 1.0  # score lost per 100 % over a limit, in penalize mode

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Constraints:
        data = dict(data or {})
        mode = data.pop("mode", "reject")
        if mode not in MODES:
            raise ValueError(f"constraints.mode must be one of {list(MODES)}, got {mode!r}")
        penalty = float(data.pop("penalty", 1.0))
        unknown = sorted(set(data) - set(LIMITS))
        if unknown:
            raise ValueError(f"unknown constraint(s) {unknown}; known: {sorted(LIMITS)}, mode, penalty")
        limits = {key: float(value) for key, value in data.items() if value is not None}
        if any(value <= 0 for value in limits.values()):
            raise ValueError("constraint limits must be positive")
        return cls(limits, mode, penalty)

    def violations(self, measured: dict[str, Any]) -> dict[str, float]:
        """Constraint -> relative excess (0.25 = 25 % over) for every limit the measurements break."""
        over = {}
        for name, limit in self.limits.items():
            value = measured.get(LIMITS[name])
            if value is not None and float(value) > limit:
                over[name] = float(value) / limit - 1.0
        return over

    def describe(self, over: dict[str, float], measured: dict[str, Any]) -> str:
        return "; ".join(
            f"{LIMITS[name]} {measured[LIMITS[name]]:g} > {name} {self.limits[name]:g}" for name in sorted(over)
        )

    def score(self, accuracy: float, over: dict[str, float]) -> float:
        """The objective the generators see: accuracy, lowered in penalize mode; 0 for a rejected network."""
        if not over:
            return accuracy
        if self.mode == "reject":
            return 0.0
        return max(0.0, accuracy - self.penalty * sum(over.values()))
