"""Generator plug-ins: each proposes valid specs, reproducibly, and uses the history it is given."""

from __future__ import annotations

import random

import pytest

from automl_orchestra.nas import generators
from automl_orchestra.nas.generators import Trial
from automl_orchestra.nas.space import SearchSpace
from automl_orchestra.nas.spec import validate

SPACE = SearchSpace("image", (1, 8, 8), 10, {"epochs": 1})


@pytest.mark.parametrize("name", ["random", "evolution", "tpe"])
def test_each_generator_proposes_valid_reproducible_specs(name: str) -> None:
    history: list[Trial] = []
    for trial in range(6):
        genome = generators.create(name).propose(SPACE, history, random.Random(trial))
        again = generators.create(name).propose(SPACE, history, random.Random(trial))
        assert genome == again
        assert set(genome) == set(SPACE.choices())
        spec = validate(SPACE.decode(genome))
        assert spec["control"]["epochs"] == 1 and spec["output"]["classes"] == 10
        history.append(Trial(genome, score=float(genome["filters1"]) / 32))  # bigger first stage scores more


def test_aging_evolution_mutates_one_choice_of_the_best_sampled_parent() -> None:
    rng = random.Random(3)
    population = [Trial(SPACE.sample(rng), score) for score in (0.1, 0.9, 0.2)]
    child = generators.create("evolution", {"populationSize": 3, "sampleSize": 3}).propose(SPACE, population, rng)
    assert sum(child[key] != population[1].genome[key] for key in child) == 1


def test_tpe_learns_from_history() -> None:
    """After random start-up trials where only filters1 = 32 scores well, TPE mostly proposes it."""
    rng = random.Random(0)
    history = []
    for _ in range(20):
        genome = SPACE.sample(rng)
        history.append(Trial(genome, 1.0 if genome["filters1"] == 32 else 0.0))
    tpe = generators.create("tpe", {"startupTrials": 5})
    picks = [tpe.propose(SPACE, history, random.Random(seed))["filters1"] for seed in range(10)]
    assert picks.count(32) >= 7


def test_unknown_generator_names_the_available_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown generator 'nope'; available: \['evolution', 'random', 'tpe'\]"):
        generators.create("nope")
