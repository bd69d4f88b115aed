"""A sampler whose randomness depends on the trial number: reproducible alone, distinct across workers.

Several workers on one study each build their own sampler. With one seed
they would all draw the same first parameters (the same random start-up
trials, the same TPE candidates): duplicated trials, wasted compute. A
different seed per worker would make a study depend on which worker ran what.
Seeding each trial from ``(seed, trial.number)`` does neither: trial numbers
are unique in a study, and a study run by one worker is the same as before
for the same seed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import optuna


class TrialSeededSampler(optuna.samplers.BaseSampler):
    """Delegates every trial to a fresh sampler seeded from ``(seed, trial.number)``.

    Args:
        seed: The study's seed.
        factory: Builds the inner sampler from a seed, e.g.
            ``lambda s: optuna.samplers.TPESampler(seed=s)``. The inner sampler
            must keep no state between trials other than its random state
            (TPE and random sampling read the history from the study).
    """

    def __init__(self, seed: int, factory: Callable[[int], Any]) -> None:
        self.seed = int(seed)
        self.factory = factory
        self._number: int | None = None
        self._inner: Any = None

    def _for(self, trial: Any) -> Any:
        if trial.number != self._number:
            child = np.random.SeedSequence([self.seed, int(trial.number)])
            self._inner = self.factory(int(child.generate_state(1)[0]))
            self._number = trial.number
        return self._inner

    def infer_relative_search_space(self, study: Any, trial: Any) -> dict[str, Any]:
        space: dict[str, Any] = self._for(trial).infer_relative_search_space(study, trial)
        return space

    def sample_relative(
        self, study: Any, trial: Any, search_space: dict[str, Any]
    ) -> dict[str, Any]:
        params: dict[str, Any] = self._for(trial).sample_relative(study, trial, search_space)
        return params

    def sample_independent(
        self, study: Any, trial: Any, param_name: str, param_distribution: Any
    ) -> Any:
        return self._for(trial).sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: Any, trial: Any) -> None:
        self._for(trial).before_trial(study, trial)

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        self._for(trial).after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        """Nothing to reseed: every trial's randomness is fixed by its number."""


def make_sampler(seed: int) -> TrialSeededSampler:
    """The studies' sampler: seeded TPE, one seed per trial (see the module docstring)."""
    return TrialSeededSampler(seed, lambda s: optuna.samplers.TPESampler(seed=s))
