"""The consensus core against the claims of the Raft paper (Ongaro & Ousterhout 2014, "§") and
the dissertation ("thesis"), one test per claim, in the manner of etcd's raft_paper_test.go.
Everything runs the real core over the in-memory harness."""

from __future__ import annotations

import attrs
import pytest

from raft_zmq.core.plants import PLANT_COMMIT_PREVIOUS_TERM, PLANT_VOTE_WITHOUT_LOG_CHECK
from raft_zmq.core.ready import CoreOptions, NotLeader, Role
from raft_zmq.core.types import (
    AppendEntries,
    AppendEntriesReply,
    Entry,
    EntryKind,
    Heartbeat,
    RequestVote,
    RequestVoteReply,
)

from .harness import Cluster


def options(**kw) -> CoreOptions:
    base = dict(election_timeout_ticks=10, heartbeat_interval_ticks=1)
    base.update(kw)
    return CoreOptions(**base)


# --- §5.1 terms ----------------------------------------------------------------------------------


def test_5_1_a_higher_term_turns_a_leader_into_a_follower():
    c = Cluster(3)
    c.elect("n1")
    leader = c.nodes["n1"].core
    leader.step(AppendEntriesReply(leader.term + 5, "n2", "n1", False, 0))
    assert leader.role is Role.FOLLOWER
    assert leader.term == c.nodes["n2"].core.term + 5


def test_5_1_a_stale_leader_is_told_the_newer_term():
    c = Cluster(3)
    c.elect("n1")
    follower = c.nodes["n2"].core
    term = follower.term
    follower.step(AppendEntries(term - 1, "n3", "n2", 0, 0, (), 0))
    rd = follower.ready()
    replies = [m for m in rd.messages if isinstance(m, AppendEntriesReply)]
    assert replies and replies[0].term == term and not replies[0].success
    follower.advance(rd)
    assert follower.term == term and follower.leader == "n1"


# --- §5.2 leader election ------------------------------------------------------------------------


def test_5_2_followers_time_out_and_elect_exactly_one_leader():
    c = Cluster(3, seed=7)
    c.run_until(lambda: len(c.leaders()) == 1, max_ticks=100)
    leader = c.leader()
    assert all(n.core.leader == leader.id for n in c.nodes.values())
    assert all(n.core.term == leader.core.term for n in c.nodes.values())


def test_5_2_election_timeouts_are_randomized_between_one_and_two_timeouts():
    c = Cluster(3, seed=3)
    core = c.nodes["n1"].core
    seen = set()
    for _ in range(200):
        core._reset(core.term)  # draws a fresh timeout
        seen.add(core._randomized_timeout)
    assert min(seen) >= 10 and max(seen) < 20 and len(seen) > 5


def test_5_2_a_node_grants_one_vote_per_term():
    c = Cluster(3, options=options(pre_vote=False))
    voter = c.nodes["n3"].core
    term = voter.term + 1
    voter.step(RequestVote(term, "n1", "n3", 1, 1))
    voter.step(RequestVote(term, "n2", "n3", 1, 1))
    rd = voter.ready()
    grants = [m for m in rd.messages if isinstance(m, RequestVoteReply) and m.granted]
    assert [g.to for g in grants] == ["n1"]
    assert rd.hard_state is not None and rd.hard_state.vote == "n1"  # persisted before replying
    voter.advance(rd)


def test_5_2_a_candidate_steps_down_for_a_leader_of_its_term():
    c = Cluster(3, options=options(pre_vote=False))
    cand = c.nodes["n2"].core
    cand.campaign()
    assert cand.role is Role.CANDIDATE
    cand.ready()
    cand.advance(cand._outstanding)
    cand.step(Heartbeat(cand.term, "n3", "n2", 0, 0))
    assert cand.role is Role.FOLLOWER and cand.leader == "n3"


@pytest.mark.parametrize("seed", range(20))
def test_5_2_election_safety_holds_under_drops_and_partitions(seed):
    """At most one leader per term, over a run with random partitions and lost messages."""
    c = Cluster(5, seed=seed)
    c.drop_rate = 0.1
    leaders_by_term: dict[int, str] = {}
    for step in range(300):
        if step % 50 == 0:
            ids = list(c.nodes)
            c.rng.shuffle(ids)
            c.heal()
            c.partition(ids[:2], ids[2:])
        c.tick()
        for node in c.leaders():
            assert leaders_by_term.setdefault(node.core.term, node.id) == node.id
    assert leaders_by_term


# --- §5.3 log replication ------------------------------------------------------------------------


def test_5_3_the_leader_replicates_and_every_node_applies_in_order():
    c = Cluster(5)
    c.elect("n1")
    for i in range(20):
        c.propose(b"cmd%d" % i)
    c.tick(2)
    expected = [b"cmd%d" % i for i in range(20)]
    for node in c.nodes.values():
        assert node.applied_commands() == expected


def test_5_3_proposals_to_a_follower_fail_fast_naming_the_leader():
    c = Cluster(3)
    c.elect("n2")
    with pytest.raises(NotLeader) as info:
        c.nodes["n1"].core.propose(b"x")
    assert info.value.leader == "n2"


def test_5_3_a_follower_with_a_conflicting_tail_is_repaired():
    c = Cluster(3)
    c.elect("n1")
    c.propose(b"base")
    # n1 appends entries that reach nobody, then loses leadership to n2.
    c.isolate("n1")
    for i in range(5):
        c.nodes["n1"].core.propose(b"lost%d" % i)
    c.stabilize()
    c.elect("n2")
    c.propose(b"kept")
    c.heal()
    c.tick(3)
    logs = {
        n.id: [(e.index, e.term) for e in n.disk.entries(1, n.disk.last_index() + 1, 1 << 30)]
        for n in c.nodes.values()
    }
    assert logs["n1"] == logs["n2"] == logs["n3"]
    assert b"lost0" not in c.nodes["n1"].applied_commands()
    assert c.nodes["n1"].applied_commands()[-1] == b"kept"


def test_5_3_fast_backtracking_skips_a_term_per_round_trip():
    """A follower holding 50 entries of a stale term, probed by a leader whose log is 60 entries
    longer, is repaired in one rejection instead of one per entry."""
    c = Cluster(3)
    c.elect("n1")
    c.isolate("n1")
    for i in range(50):
        c.nodes["n1"].core.propose(b"stale%d" % i)
    c.stabilize()
    c.elect("n2")
    for i in range(60):
        c.propose(b"new%d" % i)
    c.isolate("n2")  # n3 takes over with n2's long log; its first probe to n1 lands far past
    c.cut.discard(("n3", "n1"))
    c.cut.discard(("n1", "n3"))
    c.delivered.clear()
    c.elect("n3")
    c.tick(3)
    rejections = [
        m
        for m in c.delivered
        if isinstance(m, AppendEntriesReply) and not m.success and m.sender == "n1" and m.index
    ]
    assert 1 <= len(rejections) <= 3
    assert c.nodes["n1"].disk.last_index() == c.nodes["n3"].disk.last_index()


# --- §5.4 safety ---------------------------------------------------------------------------------


def test_5_4_1_a_candidate_with_a_stale_log_cannot_win():
    c = Cluster(3, options=options(pre_vote=False))
    c.elect("n1")
    c.crash("n3")
    c.propose(b"only on n1 and n2")
    c.restart("n3")
    c.crash("n1")
    c.expire_leases()  # so that only the log check can refuse n3
    c.nodes["n3"].core.campaign()
    c.stabilize()
    assert c.nodes["n3"].role is not Role.LEADER
    assert c.nodes["n2"].core.vote != "n3"


def test_5_4_1_planted_vote_without_log_check_elects_a_stale_candidate():
    """The same scenario with the planted bug: proves the test above can fail."""
    c = Cluster(
        3, options=options(pre_vote=False, plants=frozenset({PLANT_VOTE_WITHOUT_LOG_CHECK}))
    )
    c.elect("n1")
    c.crash("n3")
    c.propose(b"only on n1 and n2")
    c.restart("n3")
    c.crash("n1")
    c.expire_leases()  # so that only the log check can refuse n3
    c.nodes["n3"].core.campaign()
    c.stabilize()
    assert c.nodes["n3"].role is Role.LEADER


def _figure_8(plants: frozenset[str]) -> Cluster:
    """Paper Figure 8, step by step, with one entry per AppendEntries so each can be steered."""
    opts = options(pre_vote=False, append_bytes_max=1, plants=plants)
    c = Cluster(5, options=opts)
    c.elect("n1")  # term 2; its no-op (index 2) commits everywhere
    c.tick(2)
    # (a) n1 replicates index 3 (term 2) to n2 only.
    c.partition(["n1", "n2"], ["n3", "n4", "n5"])
    c.nodes["n1"].core.propose(b"term2-entry")
    c.stabilize()
    # (b) n1 crashes; n5 wins term 3 with n3 and n4, appends its no-op at index 3, replicates it
    # to nobody.
    c.crash("n1")
    c.heal()
    c.filter = lambda m: not (m.sender == "n5" and isinstance(m, AppendEntries | Heartbeat))
    c.elect("n5")
    # (c) n5 crashes; n1 restarts, wins term 4, and replicates its term-2 entry at index 3 to
    # n3, but its own no-op at index 4 to nobody.
    c.crash("n5")
    c.filter = None
    c.restart("n1")

    def strip_term_4(m):
        if isinstance(m, AppendEntries) and m.sender == "n1":
            return attrs.evolve(m, entries=tuple(e for e in m.entries if e.term != 4))
        return m

    c.rewrite = strip_term_4
    c.filter = lambda m: not (m.sender == "n1" and m.to == "n4")
    c.elect("n1")
    c.tick(2)
    return c


def test_5_4_2_figure_8_an_old_term_entry_on_a_majority_is_not_committed():
    c = _figure_8(frozenset())
    holders = [
        n
        for n in ("n1", "n2", "n3")
        if c.nodes[n].disk.last_index() >= 3 and c.nodes[n].disk.term(3) == 2
    ]
    assert len(holders) == 3  # a majority of five holds index 3 of term 2 ...
    assert c.nodes["n1"].core.log.committed < 3  # ... and it is still not committed
    # (d) n1 crashes; n5 wins with n2, n3, n4 and overwrites index 3: nothing committed is lost.
    c.crash("n1")
    c.filter = c.rewrite = None
    c.restart("n5")
    c.elect("n5")
    c.tick(3)
    for node_id in ("n2", "n3", "n4", "n5"):
        assert c.nodes[node_id].disk.term(3) == 3
    assert b"term2-entry" not in c.nodes["n1"].applied_commands()


def test_5_4_2_planted_previous_term_commit_loses_a_committed_entry():
    """Figure 8 with the planted bug: the old-term entry is committed and applied, then a new
    leader is elected whose log lacks it: Leader Completeness is broken, exactly the loss §5.4.2
    prevents. (Past this point the cluster livelocks: a follower holds a committed entry the
    leader contradicts, which correct Raft rules out.)"""
    c = _figure_8(frozenset({PLANT_COMMIT_PREVIOUS_TERM}))
    assert c.nodes["n1"].core.log.committed >= 3
    assert b"term2-entry" in c.nodes["n1"].applied_commands()
    c.crash("n1")
    c.filter = c.rewrite = None
    c.restart("n5")
    for _attempt in range(2):
        c.expire_leases()
        c.nodes["n5"].core.campaign()
        for _ in range(200):
            if c.nodes["n5"].role is Role.LEADER:
                break
            c.process_readies()
            c.deliver_one()
    assert c.nodes["n5"].role is Role.LEADER
    with pytest.raises(AssertionError):
        _check_leader_has_applied_entries(c, c.nodes["n5"])


@pytest.mark.parametrize("seed", range(15))
def test_5_4_3_leader_completeness_and_state_machine_safety(seed):
    """Every entry any node applied is in the log of every later leader, and all nodes apply the
    same sequence (Log Matching, Leader Completeness, State Machine Safety) under crashes,
    partitions, drops, duplicates and reordering."""
    c = Cluster(5, seed=seed)
    c.drop_rate, c.duplicate_rate, c.reorder = 0.05, 0.05, True
    proposed = 0
    commit_terms: dict[int, tuple[int, int]] = {}
    for _step in range(400):
        r = c.rng.random()
        if r < 0.02:
            c.heal()
            ids = list(c.nodes)
            c.rng.shuffle(ids)
            c.partition(ids[:2], ids[2:])
        elif r < 0.04:
            c.heal()
        elif r < 0.05 and len(c.down) < 2:
            c.crash(c.rng.choice([i for i in c.nodes if i not in c.down]))
        elif r < 0.07 and c.down:
            c.restart(c.rng.choice(sorted(c.down)))
        for leader in c.leaders():
            try:
                leader.core.propose(b"p%d" % proposed)
                proposed += 1
            except Exception:
                pass
        c.tick()
        _check_applied_prefixes(c)
        _record_commit_terms(c, commit_terms)
        for leader in c.leaders():
            _check_leader_completeness(leader, commit_terms)
    c.heal()
    for node_id in sorted(c.down):
        c.restart(node_id)
    c.drop_rate = c.duplicate_rate = 0.0
    c.run_until(lambda: len(c.leaders()) == 1, max_ticks=200)
    c.propose(b"final")
    c.tick(5)
    _check_applied_prefixes(c)
    final = {tuple((e.index, e.term) for e in n.applied) for n in c.nodes.values()}
    assert len(final) == 1, "all nodes converge to the same applied sequence"


def _check_applied_prefixes(c: Cluster) -> None:
    sequences = sorted((n.applied for n in c.nodes.values()), key=len)
    longest = sequences[-1]
    for seq in sequences:
        assert seq == longest[: len(seq)], "two nodes applied different entries at one index"


def _record_commit_terms(c: Cluster, commit_terms: dict[int, tuple[int, int]]) -> None:
    """For each applied index: its entry's term, and the newest term in existence when it was
    first seen applied (it was committed in that term or earlier)."""
    newest = max(n.core.term for n in c.nodes.values())
    for node in c.nodes.values():
        for entry in node.applied:
            commit_terms.setdefault(entry.index, (entry.term, newest))


def _check_leader_completeness(leader, commit_terms: dict[int, tuple[int, int]]) -> None:
    """§5.4.3: a leader of any term after an entry was committed holds that entry."""
    log = leader.core.log
    for index, (term, committed_by) in commit_terms.items():
        if leader.core.term > committed_by and index >= log.first_index():
            assert log.term(index) == term, f"leader {leader.id} lacks committed entry {index}"


def _check_leader_has_applied_entries(c: Cluster, leader) -> None:
    """Stricter, for scenarios where every applied entry predates ``leader``'s term."""
    for node in c.nodes.values():
        for entry in node.applied:
            if entry.index >= leader.core.log.first_index():
                assert leader.core.log.term(entry.index) == entry.term


# --- docs/raft-notes.md, point 2: the leader counts itself only once durable ---------------------


def test_single_node_commits_only_after_its_own_write_is_durable():
    """etcd issue 14370: a single-node cluster acknowledged a write it then lost in a crash."""
    c = Cluster(1)
    c.elect("n1")
    core = c.nodes["n1"].core
    index = core.propose(b"w")
    rd = core.ready()
    assert [e.index for e in rd.entries] == [index]
    assert all(e.index != index for e in rd.committed)  # not before the write completes
    c.nodes["n1"].disk.append(rd.entries)
    core.advance(rd)
    rd2 = core.ready()
    assert [e.index for e in rd2.committed] == [index]
    core.advance(rd2)


def test_leader_crash_before_persisting_loses_only_unacknowledged_entries():
    c = Cluster(1)
    c.elect("n1")
    core = c.nodes["n1"].core
    core.propose(b"never durable")
    rd = core.ready()  # the crash happens before the driver persists this Ready
    c.crash("n1")
    c.restart("n1")
    assert b"never durable" not in [
        e.data for e in c.nodes["n1"].disk.entries(1, c.nodes["n1"].disk.last_index() + 1, 1 << 20)
    ]
    assert rd.entries and not any(e.data == b"never durable" for e in c.nodes["n1"].applied)


# --- messages: duplicated, stale, reordered, malformed -------------------------------------------


def test_duplicated_stale_and_reordered_messages_are_harmless():
    c = Cluster(3, seed=11)
    c.elect("n1")
    c.duplicate_rate, c.reorder = 0.5, True
    for i in range(30):
        c.propose(b"d%d" % i)
    c.duplicate_rate, c.reorder = 0.0, False
    for m in list(c.delivered):  # replay the whole history once more
        c.nodes[m.to].core.step(m)
        c.stabilize()
    c.tick(3)
    expected = [b"d%d" % i for i in range(30)]
    for node in c.nodes.values():
        assert node.applied_commands() == expected


def test_malformed_messages_are_dropped_and_counted():
    c = Cluster(3)
    c.elect("n1")
    follower = c.nodes["n2"].core
    term = follower.term
    bad = AppendEntries(term, "n1", "n2", 5, 2, (Entry(9, 2, EntryKind.NORMAL, b"x"),), 0)
    follower.step(bad)
    follower.step(AppendEntries(term, "n1", "n3", 0, 0, (), 0))  # not addressed to n2
    assert follower.dropped == {"malformed_entries": 1, "misdirected": 1}
    assert not follower.has_ready() or not follower.ready().entries
