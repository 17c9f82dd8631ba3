"""A model-based generator: Optuna's Tree-structured Parzen Estimator over the genome's choices.

The study is rebuilt from the history on every call (Optuna is only the density model here), which keeps
the generator stateless like the others; failed trials are told to Optuna as failed.
"""

from __future__ import annotations

import random
from typing import Any

from automl_orchestra.nas.generators.base import Generator, Trial
from automl_orchestra.nas.space import Genome, SearchSpace


class TpeSearch(Generator):
    name = "tpe"

    def propose(self, space: SearchSpace, history: list[Trial], rng: random.Random) -> Genome:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        distributions: dict[str, Any] = {
            key: optuna.distributions.CategoricalDistribution(options) for key, options in space.choices().items()
        }
        startup = int(self.options.get("startupTrials", 3))
        sampler = optuna.samplers.TPESampler(seed=rng.randrange(2**31), n_startup_trials=startup)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        for trial in history:
            params = {key: trial.genome[key] for key in distributions if trial.genome.get(key) in space.choices()[key]}
            if len(params) != len(distributions):
                continue  # a genome from another space: nothing to learn from it
            state = optuna.trial.TrialState.COMPLETE if trial.score is not None else optuna.trial.TrialState.FAIL
            study.add_trial(
                optuna.trial.create_trial(params=params, distributions=distributions, value=trial.score, state=state)
            )
        proposal = study.ask(distributions)
        return dict(proposal.params)
