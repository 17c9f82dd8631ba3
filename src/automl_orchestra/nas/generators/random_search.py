"""Random search: every choice uniformly at random, ignoring the history (the baseline)."""

from __future__ import annotations

import random

from automl_orchestra.nas.generators.base import Generator, Trial
from automl_orchestra.nas.space import Genome, SearchSpace


class RandomSearch(Generator):
    name = "random"

    def propose(self, space: SearchSpace, history: list[Trial], rng: random.Random) -> Genome:
        return space.sample(rng)
