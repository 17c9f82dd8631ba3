"""The one small interface every generator implements: propose a genome from the search history."""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from automl_orchestra.nas.space import Genome, SearchSpace


@dataclass(frozen=True)
class Trial:
    """One earlier proposal and the score it got (None: it failed; rejected networks score 0)."""

    genome: Genome
    score: float | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Trial:
        genome = data.get("genome")
        if not isinstance(genome, dict):
            raise ValueError("every history entry needs a 'genome' object")
        score = data.get("score")
        return cls(genome, None if score is None else float(score))


class Generator(ABC):
    """A NAS algorithm. Stateless between calls: everything it knows is the history it is given, so a
    proposal is reproducible (same history, same seed, same genome) and can run on any worker."""

    name: ClassVar[str] = ""

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        self.options = dict(options or {})

    @abstractmethod
    def propose(self, space: SearchSpace, history: list[Trial], rng: random.Random) -> Genome:
        """The next genome to try."""
