"""Each planted bug is caught within PLANT_SEEDS_MAX seeds, and the seed that catches it runs
clean without the plant: the checkers catch the bug, not something else. A plant with a targeted
profile (simulations/plants.py) runs it, plant and clean alike, to keep CI short."""

from __future__ import annotations

import pytest

from simulations.plants import PLANT_NAMES, PLANT_SEEDS_MAX
from simulations.plants import plant as plant_named
from simulations.simulation import RunConfig, Simulation

PLANT_TIME_S = 10.0


@pytest.mark.parametrize("plant", PLANT_NAMES)
def test_each_planted_bug_is_caught_within_the_seed_budget(plant):
    targeted = plant_named(plant).targeted
    for seed in range(PLANT_SEEDS_MAX):
        config = RunConfig(seed, time_s=PLANT_TIME_S, plants=frozenset({plant}), **targeted)
        planted = Simulation(config)
        result = planted.run()
        if not result.ok:
            break
    else:
        pytest.fail(f"{plant} was not caught in {PLANT_SEEDS_MAX} seeds")
    clean = Simulation(RunConfig(seed, time_s=PLANT_TIME_S, **targeted)).run()
    assert clean.ok, (seed, clean.invariant, clean.detail)
