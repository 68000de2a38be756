"""The Ready contract (raft_zmq/core/ready.py) where it protects safety: what may leave before the
round's sync. Issue 10, finding 2: a single voter wins its election inside ``campaign()``, and the
AppendEntries of its new term went out as early messages, before the term and vote were durable.
"""

from __future__ import annotations

from raft_zmq.core.plants import PLANT_EARLY_BEFORE_TERM_SYNC
from raft_zmq.core.ready import CoreOptions, Role
from raft_zmq.core.types import AppendEntries, Entry

from .harness import Cluster


def _single_voter_with_learner(plants: frozenset[str] = frozenset()) -> Cluster:
    options = CoreOptions(election_timeout_ticks=10, heartbeat_interval_ticks=1, plants=plants)
    c = Cluster(2, options=options, nonvoters={"n2"})
    c.stabilize()
    return c


def test_a_round_that_changes_term_and_vote_sends_nothing_before_its_sync():
    c = _single_voter_with_learner()
    core = c.nodes["n1"].core
    term = core.term
    core.campaign()
    assert core.role is Role.LEADER  # won inside campaign(): one voter
    rd = core.ready()
    assert rd.hard_state is not None
    assert (rd.hard_state.term, rd.hard_state.vote) == (term + 1, "n1")
    assert rd.early_messages == ()
    appends = [m for m in rd.messages if isinstance(m, AppendEntries)]
    assert [m.to for m in appends] == ["n2"], "the learner hears of the new term after the sync"


def test_a_leaders_later_rounds_still_send_appends_before_the_sync():
    c = _single_voter_with_learner()
    c.elect("n1")
    core = c.nodes["n1"].core
    core.propose(b"x")
    rd = core.ready()
    assert rd.hard_state is None or rd.hard_state.term == core.term
    assert [type(m) for m in rd.early_messages] == [AppendEntries]
    assert rd.messages == ()


def _crash_before_the_first_sync_then_lead_again(c: Cluster) -> None:
    """n1 campaigns and proposes in one round; the driver sends that round's early messages and
    the process dies before the fsync. It restarts from its durable state, wins the same term
    number again and proposes a different command at the same index."""
    n1 = c.nodes["n1"]
    n1.core.campaign()
    n1.core.propose(b"lost")
    rd = n1.core.ready()
    learner = c.nodes["n2"]
    for m in rd.early_messages:  # what a driver sends before it persists reaches the learner
        learner.core.step(m)
    learner.handle_ready(lambda replies: None)  # the learner persists; its answers find no one
    c.crash("n1")  # before the fsync: term 2, vote and "lost" never reached the disk
    c.restart("n1")
    n1.core.campaign()
    n1.core.propose(b"kept")
    c.tick()  # a heartbeat tells the learner the commit index


def _entries(c: Cluster, node_id: str) -> list[Entry]:
    disk = c.nodes[node_id].disk
    return disk.entries(disk.first_index(), disk.last_index() + 1, 1 << 30)


def test_a_single_voter_that_crashes_before_its_term_is_durable_never_forks_its_learner():
    c = _single_voter_with_learner()
    _crash_before_the_first_sync_then_lead_again(c)
    leader = {(e.index, e.term): e for e in _entries(c, "n1")}
    for entry in _entries(c, "n2"):
        assert leader[(entry.index, entry.term)] == entry, "two entries with one index and term"
    assert c.nodes["n2"].applied_commands() == c.nodes["n1"].applied_commands() == [b"kept"]


def test_control_with_the_bug_planted_the_learner_keeps_the_forgotten_entry():
    """The scenario above can fail: with early messages sent anyway, the learner holds "lost" at
    the index and term where the leader holds "kept", and applies it."""
    c = _single_voter_with_learner(frozenset({PLANT_EARLY_BEFORE_TERM_SYNC}))
    _crash_before_the_first_sync_then_lead_again(c)
    assert c.nodes["n1"].applied_commands() == [b"kept"]
    assert c.nodes["n2"].applied_commands() == [b"lost"]
