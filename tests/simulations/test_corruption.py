"""A crash of several nodes at once leaves at most one of them with a corrupt last entry: two
corrupt voters of three could never be removed (no majority), and the cluster would be lost, as
a real one would be. Seed 200 crashed node-0, node-2 and node-4 at once and corrupted two."""

from __future__ import annotations

from simulations.simulation import RunConfig, Simulation


def test_a_crash_of_several_nodes_corrupts_at_most_one_and_the_cluster_recovers():
    sim = Simulation(RunConfig(200, time_s=5.0))
    result = sim.run()
    assert result.ok, (result.invariant, result.detail)
    assert result.stats["corruptions"] == 1
