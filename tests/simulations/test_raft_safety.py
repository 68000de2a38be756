"""The Raft safety checks: election safety, log matching, committed entries that must never
change or vanish, and leader completeness, both at election and prospectively at every commit."""

from __future__ import annotations

import attrs
import pytest

from raft_zmq.core.ready import Role, SoftState
from raft_zmq.core.types import ClusterConfig, Entry, EntryKind, HardState, Server
from simulations.checkers.raft_safety import RaftSafety, Violation
from simulations.world.disk import SimLog

CONFIG = ClusterConfig(tuple(Server(f"n{i}", f"n{i}:1") for i in range(3)))


def entry(index: int, term: int, data: bytes = b"") -> Entry:
    return Entry(index, term, EntryKind.NORMAL, data or f"{index}/{term}".encode())


def write(log: SimLog, *entries: Entry) -> None:
    log.complete_write(log.begin_write(None, entries, None))


@attrs.define
class FakeLog:
    """The slice of RaftLog the leader completeness check reads."""

    terms: dict[int, int]
    first: int = 1

    def first_index(self) -> int:
        return self.first

    def term(self, index: int) -> int | None:
        return self.terms.get(index)

    def last_index(self) -> int:
        return max(self.terms)

    def last_term(self) -> int:
        return self.terms[self.last_index()]


@attrs.define
class FakeCore:
    term: int
    log: FakeLog


@attrs.define
class FakeNode:
    id: str
    disk: SimLog
    core: FakeCore | None = None


def test_two_leaders_in_one_term_break_election_safety():
    safety = RaftSafety()
    core = FakeCore(3, FakeLog({1: 1}))
    safety.on_soft_state("n0", SoftState(Role.LEADER, "n0", 3), core)
    safety.on_soft_state("n0", SoftState(Role.LEADER, "n0", 3), core)  # the same leader again
    with pytest.raises(Violation, match="election safety"):
        safety.on_soft_state("n1", SoftState(Role.LEADER, "n1", 3), core)


def test_one_index_and_term_with_two_commands_breaks_log_matching():
    safety, a, b = RaftSafety(), SimLog.bootstrapped(CONFIG), SimLog.bootstrapped(CONFIG)
    w = a.begin_write(None, [entry(2, 2, b"one")], None)
    safety.on_persisted("n0", w, a.complete_write(w))
    w = b.begin_write(None, [entry(2, 2, b"two")], None)
    with pytest.raises(Violation, match="log matching"):
        safety.on_persisted("n1", w, b.complete_write(w))


def test_one_index_and_term_after_different_predecessors_breaks_log_matching():
    safety, a, b = RaftSafety(), SimLog.bootstrapped(CONFIG), SimLog.bootstrapped(CONFIG)
    write(a, entry(2, 2))
    write(b, entry(2, 3))
    w = a.begin_write(None, [entry(3, 4, b"x")], None)
    safety.on_persisted("n0", w, a.complete_write(w))
    w = b.begin_write(None, [entry(3, 4, b"x")], None)
    with pytest.raises(Violation, match="another prefix"):
        safety.on_persisted("n1", w, b.complete_write(w))


def test_a_committed_entry_committed_again_differently_is_a_violation():
    safety = RaftSafety()
    safety.on_committed("n0", 2, (entry(1, 1), entry(2, 2)))
    safety.on_committed("n1", 2, (entry(2, 2),))
    with pytest.raises(Violation, match="committed entry changed"):
        safety.on_committed("n2", 3, (entry(2, 3),))


def test_a_write_that_drops_a_committed_entry_is_a_violation():
    safety, log = RaftSafety(), SimLog.bootstrapped(CONFIG)
    write(log, entry(2, 2), entry(3, 2))
    safety.on_committed("n0", 2, (entry(1, 1, log.entries(1, 2, 1 << 20)[0].data), entry(2, 2)))
    w = log.begin_write(None, [entry(2, 3)], None)  # truncates 2 and 3, replaces 2
    with pytest.raises(Violation, match="dropped committed entry 2/2"):
        safety.on_persisted("n1", w, log.complete_write(w))


def test_a_new_leader_lacking_an_entry_committed_in_an_earlier_term_is_a_violation():
    safety = RaftSafety()
    safety.on_committed("n0", 2, (entry(1, 1), entry(2, 2)))
    holding = FakeCore(3, FakeLog({1: 1, 2: 2}))
    safety.on_soft_state("n1", SoftState(Role.LEADER, "n1", 3), holding)
    lacking = FakeCore(4, FakeLog({1: 1}))
    with pytest.raises(Violation, match="leader completeness"):
        safety.on_soft_state("n2", SoftState(Role.LEADER, "n2", 4), lacking)


def test_a_leader_of_a_term_before_the_commit_need_not_hold_the_entry():
    safety = RaftSafety()
    safety.on_committed("n0", 5, (entry(1, 1), entry(2, 5)))
    late = FakeCore(4, FakeLog({1: 1}))  # won term 4's votes late, before term 5 committed
    safety.on_soft_state("n2", SoftState(Role.LEADER, "n2", 4), late)


def test_a_node_lacking_a_new_commit_that_could_still_win_an_election_is_a_violation():
    """Figure 8 of the Raft paper: index 2 of term 2 committed by counting replicas while n2
    holds index 2 of term 3, more up to date than n1's log: n2 could win with n1's vote."""
    logs = {n: SimLog.bootstrapped(CONFIG) for n in ("n0", "n1", "n2")}
    write(logs["n0"], entry(2, 2), entry(3, 4))
    write(logs["n1"], entry(2, 2))
    write(logs["n2"], entry(2, 3))
    nodes = {n: FakeNode(n, log) for n, log in logs.items()}
    safety = RaftSafety(nodes)
    first = logs["n0"].entries(1, 2, 1 << 20)[0]
    with pytest.raises(Violation, match="n2, whose durable log lacks it"):
        safety.on_committed("n0", 4, (first, entry(2, 2)))


def test_a_node_lacking_a_commit_that_a_durable_majority_outranks_is_fine():
    logs = {n: SimLog.bootstrapped(CONFIG) for n in ("n0", "n1", "n2")}
    write(logs["n0"], entry(2, 2), entry(3, 4))
    write(logs["n1"], entry(2, 2), entry(3, 4))
    write(logs["n2"], entry(2, 3))
    nodes = {n: FakeNode(n, log) for n, log in logs.items()}
    first = logs["n0"].entries(1, 2, 1 << 20)[0]
    RaftSafety(nodes).on_committed("n0", 4, (first, entry(2, 2), entry(3, 4)))


def test_acknowledgements_that_ran_ahead_of_the_disk_are_seen_at_commit():
    """A majority claims index 2 but only the leader's disk has it: either other node, once
    restarted from its disk, could be elected without it."""
    logs = {n: SimLog.bootstrapped(CONFIG) for n in ("n0", "n1", "n2")}
    write(logs["n0"], entry(2, 2))
    logs["n1"].begin_write(HardState(2), [entry(2, 2)], None)  # still in flight
    nodes = {n: FakeNode(n, log) for n, log in logs.items()}
    first = logs["n0"].entries(1, 2, 1 << 20)[0]
    with pytest.raises(Violation, match="leader completeness"):
        RaftSafety(nodes).on_committed("n0", 2, (first, entry(2, 2)))
