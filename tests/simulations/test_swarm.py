"""The fixed swarm CI runs: every seed of the range, every checker, zero violations. Longer
swarms are for the command line (docs/simulations.md)."""

from __future__ import annotations

from collections import Counter

from simulations.cli import replay_command
from simulations.simulation import RunConfig, Simulation

CI_SEEDS = range(0, 100)
CI_TIME_S = 10.0


def test_a_fixed_range_of_seeds_runs_without_a_violation():
    failures = []
    faults = 0
    totals: Counter[str] = Counter()
    for seed in CI_SEEDS:
        config = RunConfig(seed=seed, time_s=CI_TIME_S)
        result = Simulation(config).run()
        faults += result.faults_injected
        totals.update(result.stats)
        if not result.ok:
            tail = "\n    ".join(result.trace_tail[-15:])
            failures.append(
                f"seed {seed}: {result.invariant}: {result.detail}\n"
                f"  replay: {replay_command(result, config)}\n  last events:\n    {tail}"
            )
    assert not failures, "\n".join(failures)
    # The range does exercise what it should: faults, lost writes, snapshots streamed and
    # installed, operations whose outcome had to be resolved from the log.
    assert faults > 10 * len(CI_SEEDS)
    for stat in ("writes_lost", "snapshots_sent", "snapshots_installed", "ops_resolved_done"):
        assert totals[stat] > 0, stat
