"""A stall of one process (a long round, an fsync on a busy disk, a starved CPU) seen by the
driver: the shell hands in the messages that arrived meanwhile and the ticks it missed, and the
driver steps the messages first (docs/raft.md, "Stalls"). So a stall alone neither deposes a
live leader nor times out a follower that has just heard from its leader; and a stall over a
real silence still counts in full. tests/raft/test_node_stall.py shows the shell's half: the
ticker takes what the transport holds before it hands in its ticks (docs/reliability.md,
finding 2: without it, live leaders stepped down under load)."""

from __future__ import annotations

from raft_zmq.core.ready import Role
from raft_zmq.core.types import ClusterConfig, Heartbeat, HeartbeatReply, RequestVote, Server
from tests.raft.test_driver import OPTIONS, Shell, deliver

TIMEOUT = OPTIONS.election_timeout_ticks


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


def leader_about_to_judge(shells: dict[str, Shell]) -> None:
    """Ticks the healthy cluster until the leader's next tick runs check-quorum (which clears
    what it heard): the heartbeat of that tick is the last thing it hears of before a stall of an
    election timeout of ticks crosses its next check."""
    a = shells["a"]
    for _ in range(2 * TIMEOUT):
        if a.driver.core.election_elapsed == TIMEOUT - 1:
            return
        steady(shells, 1)
    raise AssertionError("the leader's check-quorum clock did not advance")


def answers_to_a_heartbeat(shells: dict[str, Shell]) -> list:
    """The leader's next heartbeat, delivered and answered; the answers are returned unread."""
    a = shells["a"]
    a.driver.tick()
    a.run()
    beats, a.outbox = a.outbox, []
    assert {m.to for m in beats if isinstance(m, Heartbeat)} == {"b", "c"}
    for msg in beats:
        shells[msg.to].driver.receive([msg])
    answers = []
    for name in "bc":
        shells[name].run()
        answers += [m for m in shells[name].outbox if m.to == "a"]
        shells[name].outbox.clear()
    assert {m.sender for m in answers if isinstance(m, HeartbeatReply)} == {"b", "c"}
    return answers


def test_a_stalled_leader_reads_its_followers_answers_before_the_stall_s_ticks():
    shells = three()
    a = shells["a"]
    leader_about_to_judge(shells)
    answers = answers_to_a_heartbeat(shells)
    assert a.driver.core.election_elapsed == 0  # judged: the answers are all it will have
    # The stall crosses one check-quorum; the shell hands in the answers and the ticks together.
    a.driver.tick(TIMEOUT)
    a.driver.receive(answers)
    a.run()
    assert a.driver.core.role is Role.LEADER
    deliver(shells)
    steady(shells, 2 * TIMEOUT)
    assert a.driver.core.role is Role.LEADER


def test_a_stalled_leader_that_heard_nothing_steps_down():
    # The same stall with the answers lost: the silence is real, and check-quorum says so.
    shells = three()
    a = shells["a"]
    leader_about_to_judge(shells)
    answers_to_a_heartbeat(shells)
    a.driver.tick(TIMEOUT)
    a.run()
    assert a.driver.core.role is Role.FOLLOWER


def follower_about_to_time_out(shells: dict[str, Shell]) -> Shell:
    """b, cut from its leader, ticks until one more tick would start its election."""
    b = shells["b"]
    while b.driver.core.election_elapsed < b.driver.core._randomized_timeout - 1:
        b.driver.tick()
        b.run()
    assert b.driver.core.role is Role.FOLLOWER
    return b


def test_a_stalled_follower_reads_its_leader_s_heartbeat_before_the_stall_s_ticks():
    shells = three()
    a = shells["a"]
    b = follower_about_to_time_out(shells)
    a.driver.tick()
    a.run()
    to_b = [m for m in a.outbox if m.to == "b" and isinstance(m, Heartbeat)]
    assert to_b
    a.outbox.clear()
    b.driver.tick(2)  # a short stall, the heartbeat arriving during it
    b.driver.receive(to_b)
    b.run()
    assert b.driver.core.role is Role.FOLLOWER and b.driver.core.leader == "a"
    # It never stood: no pre-vote went out to disturb the others.
    assert not [m for m in b.outbox if isinstance(m, RequestVote)]


def test_a_stall_still_counts_when_nothing_arrives():
    # The leader is gone: the follower that stalled campaigns within an election timeout and a
    # half of ticks after the stall, as one that did not stall would.
    shells = three()
    b = shells["b"]
    b.driver.tick(3 * TIMEOUT)
    b.run()
    ticks = 0
    while b.driver.core.role is Role.FOLLOWER and ticks < 2 * TIMEOUT:
        b.driver.tick()
        b.run()
        ticks += 1
    assert b.driver.core.role is Role.PRE_CANDIDATE


def test_a_follower_stalled_without_its_leader_s_heartbeat_stands():
    shells = three()
    b = follower_about_to_time_out(shells)
    b.driver.tick(2)
    b.run()
    assert b.driver.core.role is Role.PRE_CANDIDATE
