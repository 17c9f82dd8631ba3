"""Regularized (aging) evolution, Real et al. 2018: the population is the latest ``populationSize``
trials (the oldest dies, whatever its score); a parent is the best of ``sampleSize`` random members, and
the child is the parent with one choice mutated. Random proposals fill the first population."""

from __future__ import annotations

import random

from automl_orchestra.nas.generators.base import Generator, Trial
from automl_orchestra.nas.space import Genome, SearchSpace


class AgingEvolution(Generator):
    name = "evolution"

    def propose(self, space: SearchSpace, history: list[Trial], rng: random.Random) -> Genome:
        population_size = int(self.options.get("populationSize", 4))
        sample_size = max(1, min(int(self.options.get("sampleSize", 2)), population_size))
        if len(history) < population_size:
            return space.sample(rng)
        population = history[-population_size:]
        contenders = rng.sample(population, sample_size)
        parent = max(contenders, key=lambda trial: -1.0 if trial.score is None else trial.score)
        return space.mutate(parent.genome, rng)
