"""The simulated service does what doq/service.py does: node numbers through the log (so IDs are
unique by construction, doq/ids.py) and command times clamped into the window the voters' clocks
allow (doq/clockbound.py), whatever one node's clock says."""

from __future__ import annotations

from doq.ids import ID_NODE_MAX, id_unix_ms
from doq.state.results import Enqueued, NodeNumberAssigned
from simulations.simulation import RunConfig, Simulation
from simulations.world.clock import BASE_UNIX_MS
from simulations.world.profile import MembershipProfile

SEED = 6  # 5 nodes, leaders disconnected again and again: several leaders hand out IDs
TIME_S = 10.0
NODE_SHIFT_BITS = 12  # doq/ids.py's layout: 12 bits of sequence below the node number
FAR_MS = 120_000  # twice the bound
DAY_MS = 86_400_000
FIXED = MembershipProfile()  # no membership changes: the far node leads in this seed


def _run(config: RunConfig) -> Simulation:
    sim = Simulation(config)
    result = sim.run()
    assert result.ok, (result.invariant, result.detail)
    return sim


def test_each_leader_gets_its_node_number_through_the_log_and_ids_carry_it():
    sim = _run(RunConfig(SEED, time_s=TIME_S))
    applied = sim.observer.agreement.applied
    assigned: dict[str, int] = {}
    for entry in applied.values():
        result = entry.result
        if isinstance(result, NodeNumberAssigned):
            assert assigned.setdefault(result.node_id, result.number) == result.number
    assert len(assigned) >= 2, assigned  # several leaders wrote
    assert len(set(assigned.values())) == len(assigned), assigned  # unique by construction
    numbers = set(assigned.values())
    generated = [
        m.id
        for e in applied.values()
        if isinstance(e.result, Enqueued)
        for m in e.result.messages
        if id_unix_ms(m.id) > BASE_UNIX_MS - DAY_MS  # the leader's (clients choose small IDs)
    ]
    assert generated
    assert {(i >> NODE_SHIFT_BITS) & ID_NODE_MAX for i in generated} <= numbers


def test_a_clock_far_ahead_or_behind_is_clamped_into_the_voters_window():
    for far_ms in (FAR_MS, -FAR_MS):
        config = RunConfig(SEED, time_s=TIME_S, far_clock_ms=far_ms, membership=FIXED)
        sim = _run(config)
        far = [n for n in sim.nodes.values() if abs(n.clock.offset_ms) > FAR_MS // 2]
        assert len(far) == 1
        assert sim.services[far[0].id].clamped_stamps > 0  # it led, and its stamps were bounded
        assert sim.observer.clocks.checked > 0
