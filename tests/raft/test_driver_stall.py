"""A stall of one process (a long round, an fsync on a busy disk, a starved CPU) seen by the
driver: the Trio shell hands it in as one ``tick(count)`` of all the ticks it missed, often before
the receive path has handed over what arrived meanwhile. The stall alone must not depose a live
leader nor time out a follower that has just heard from it; a silent peer set must still be
noticed (docs/reliability.md, finding 2: leaders of the soak stepped down after their own
half-second fsyncs, and the cluster went without one for up to 17 s)."""

from __future__ import annotations

from raft_zmq.core.ready import Role
from raft_zmq.core.types import ClusterConfig, Heartbeat, Server
from raft_zmq.driver.limits import MISSED_TICKS_MAX, STALL_GRACE_TICKS
from tests.raft.test_driver import OPTIONS, Shell, deliver

TIMEOUT = OPTIONS.election_timeout_ticks
STALL = 3 * TIMEOUT  # ticks a stalled loop hands in at once


def three() -> dict[str, Shell]:
    config = ClusterConfig(tuple(Server(n, f"{n}:1") for n in "abc"))
    shells = {n: Shell(n, config) for n in "abc"}
    shells["a"].driver.core.campaign()
    shells["a"].run()
    deliver(shells)
    assert shells["a"].driver.core.role is Role.LEADER
    steady(shells, TIMEOUT)
    return shells


def steady(shells: dict[str, Shell], ticks: int) -> None:
    """Every node ticks once a tick and every message is delivered: a healthy cluster."""
    for _ in range(ticks):
        for shell in shells.values():
            shell.driver.tick()
            shell.run()
        deliver(shells)


def test_a_leader_that_stalled_stays_leader_when_its_followers_answer():
    shells = three()
    a = shells["a"]
    a.driver.tick(STALL)  # the ticker's first tick after the stall, before any message
    a.run()
    assert a.driver.core.role is Role.LEADER
    deliver(shells)  # the followers' answers come in
    steady(shells, 2 * TIMEOUT)
    assert a.driver.core.role is Role.LEADER
    assert {s.driver.core.leader for s in shells.values()} == {"a"}


def test_a_follower_that_stalled_does_not_time_out_on_the_heartbeat_it_has_not_read():
    shells = three()
    a, b = shells["a"], shells["b"]
    a.driver.tick()  # one heartbeat interval: a heartbeat for b is on its way
    a.run()
    to_b = [m for m in a.outbox if m.to == "b" and isinstance(m, Heartbeat)]
    assert to_b
    a.outbox.clear()
    b.driver.tick(STALL)  # after b's stall the ticker and the receive path both hand in
    b.driver.receive(to_b)
    b.run()
    assert b.driver.core.role is Role.FOLLOWER and b.driver.core.leader == "a"
    assert not [m for m in b.outbox if m.to != "a"]  # no (pre-)vote request went out


def test_a_stall_still_counts_when_nothing_arrives():
    # The leader is gone: the follower's stall is held only STALL_GRACE_TICKS, then it counts,
    # so the follower campaigns within an election timeout and a half of its own ticks.
    shells = three()
    b = shells["b"]
    b.driver.tick(STALL)
    b.run()
    ticks = 0
    while b.driver.core.role is Role.FOLLOWER and ticks < 2 * TIMEOUT + STALL_GRACE_TICKS:
        b.driver.tick()
        b.run()
        ticks += 1
    assert b.driver.core.role is Role.PRE_CANDIDATE
    assert ticks <= 2 * TIMEOUT - TIMEOUT // 2 + STALL_GRACE_TICKS


def test_ticks_handed_in_are_bounded():
    shell = three()["a"]
    for _ in range(MISSED_TICKS_MAX + 5):
        shell.driver.tick()
    shell.driver.tick(MISSED_TICKS_MAX * 5)
    assert shell.driver._ticks == MISSED_TICKS_MAX
    assert shell.driver._stall_ticks == MISSED_TICKS_MAX


def test_a_long_stall_is_fed_half_an_election_timeout_a_feed_and_none_is_lost():
    shells = three()
    b = shells["b"]
    b.driver.tick(STALL)  # one tick now, STALL - 1 held
    b.run()
    assert b.driver._stall_ticks == STALL - 1
    fed = 0
    while b.driver._stall_ticks:
        held = b.driver._stall_ticks
        b.driver.receive([])  # nothing arrives: the grace runs out, then a half timeout a feed
        b.driver.tick()
        b.run()
        fed += held - b.driver._stall_ticks
        assert held - b.driver._stall_ticks <= TIMEOUT // 2
    assert fed == STALL - 1
