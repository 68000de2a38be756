"""Membership changes and leadership transfers in the workload (simulations/actors/operator.py),
and single-voter clusters with learners: every check passes through them, and a removed node is
retired (stopped for good) once its removal is committed."""

from __future__ import annotations

from simulations.simulation import RunConfig, RunResult, Simulation
from simulations.world.profile import MembershipProfile

TIME_S = 10.0
CHANGES = MembershipProfile(spares=2, mean_gap_ms=1_000)


def _run(seed: int, membership: MembershipProfile) -> tuple[Simulation, RunResult]:
    sim = Simulation(RunConfig(seed, nodes=3, time_s=TIME_S, membership=membership))
    result = sim.run()
    assert result.ok, (result.invariant, result.detail)
    return sim, result


def test_voters_removed_and_leadership_transferred_and_removed_nodes_retired():
    sim, result = _run(1, CHANGES)
    stats = result.stats
    assert stats["membership_remove"] >= 1 and stats["membership_transfer"] >= 1
    assert stats["membership_retired"] == len(sim.retired) >= 1
    assert all(not sim.nodes[i].up for i in sim.retired)


def test_spares_added_as_learners_then_promoted_to_voters():
    sim, result = _run(4, CHANGES)
    stats = result.stats
    assert stats["membership_add_nonvoter"] >= 1 and stats["membership_add_voter"] >= 1
    leader = next(n for n in sim.nodes.values() if n.is_leader)
    assert leader.core is not None and len(leader.core.config.voters) > 3


def test_a_single_voter_with_learners_serves_and_its_learners_apply_everything():
    sim, result = _run(1, MembershipProfile(learners=2))
    leader = next(n for n in sim.nodes.values() if n.is_leader)
    assert leader.core is not None and leader.core.config.voters == {leader.id}
    assert result.stats["ops_ok"] > 100


def test_a_node_with_a_corrupt_last_entry_refuses_to_start_and_is_repaired_as_an_operator_would():
    """Finding 6: the node does not drop the entry and start; the operator removes it through
    the leader, wipes it, and it rejoins empty as a learner, promoted once caught up."""
    membership = MembershipProfile(spares=1, mean_gap_ms=1_500)
    result = Simulation(RunConfig(2, nodes=5, time_s=TIME_S, membership=membership)).run()
    assert result.ok, (result.invariant, result.detail)
    assert result.stats["corruptions"] == 1 and result.stats["membership_repair"] == 1
