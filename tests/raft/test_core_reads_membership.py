"""ReadIndex (thesis §6.4), single-server membership changes (thesis §4.1 and the 2015 raft-dev
correction), snapshots and restarts of the consensus core."""

from __future__ import annotations

import pytest

from raft_zmq.core.ready import (
    ConfigChange,
    ConfigChangeKind,
    ConfigChangeRejected,
    CoreOptions,
    NotLeader,
    ProposalDropped,
    Role,
)
from raft_zmq.core.types import EntryKind, Heartbeat, HeartbeatReply, Suffrage

from .harness import Cluster, snapshot_messages


def options(**kw) -> CoreOptions:
    base = dict(election_timeout_ticks=10, heartbeat_interval_ticks=1)
    base.update(kw)
    return CoreOptions(**base)


# --- ReadIndex -----------------------------------------------------------------------------------


def test_read_index_is_served_after_a_majority_confirms_leadership():
    c = Cluster(3)
    c.elect("n1")
    c.propose(b"w")
    leader = c.nodes["n1"]
    commit = leader.core.log.committed
    c.delivered.clear()
    leader.core.read_index(42)
    assert leader.core.has_ready()
    c.stabilize()
    assert [(r.ctx, r.index) for r in leader.read_states] == [(42, commit)]
    assert any(isinstance(m, Heartbeat) for m in c.delivered)


def test_read_index_on_an_isolated_leader_is_never_served_and_fails_on_step_down():
    c = Cluster(3)
    c.elect("n1")
    leader = c.nodes["n1"]
    c.isolate("n1")
    leader.core.read_index(7)
    c.stabilize()
    assert leader.read_states == []
    c.tick(c.options.election_timeout_ticks * 2, nodes=["n1"])  # check-quorum: steps down
    assert leader.role is Role.FOLLOWER
    assert leader.failed_reads == [7]


def test_reads_waiting_for_a_removed_voter_are_served_by_the_smaller_majority():
    # Issue 10, finding 7: reads wait for heartbeat answers from a majority; once the
    # configuration shrinks (in effect when appended), a majority of the new one may already have
    # answered, down to the leader alone, and no answer from the removed voter will ever come.
    c = Cluster(2)
    c.elect("n1")
    leader = c.nodes["n1"]
    c.crash("n2")
    leader.core.read_index(7)
    c.stabilize()
    assert leader.read_states == []  # n2's answer is needed and never comes
    leader.core.propose_config(ConfigChange(ConfigChangeKind.REMOVE, "n2"))
    c.stabilize()
    assert leader.core.config.voters == {"n1"}
    assert [r.ctx for r in leader.read_states] == [7]


def test_read_index_waits_for_the_new_leaders_first_commit():
    c = Cluster(3)
    c.filter = lambda m: not isinstance(m, Heartbeat | HeartbeatReply)
    c.nodes["n1"].core.campaign()
    # Deliver the votes but hold back replication: the leader's no-op is not committed yet.
    for _ in range(50):
        c.process_readies()
        if c.nodes["n1"].role is Role.LEADER:
            break
        c.deliver_one()
    leader = c.nodes["n1"]
    assert leader.role is Role.LEADER and not leader.core.committed_in_term()
    leader.core.read_index(1)
    assert leader.read_states == []
    c.filter = None
    c.stabilize()
    assert [r.ctx for r in leader.read_states] == [1]
    assert leader.read_states[0].index >= leader.core.log.last_index() - 0


def test_read_index_on_a_follower_names_the_leader():
    c = Cluster(3)
    c.elect("n2")
    with pytest.raises(NotLeader) as info:
        c.nodes["n1"].core.read_index(1)
    assert info.value.leader == "n2"


def test_a_single_node_serves_reads_at_once():
    c = Cluster(1)
    c.elect("n1")
    c.nodes["n1"].core.read_index(5)
    c.stabilize()
    assert [r.ctx for r in c.nodes["n1"].read_states] == [5]


# --- membership ----------------------------------------------------------------------------------


def _add(c: Cluster, node_id: str, kind=ConfigChangeKind.ADD_VOTER) -> int | None:
    index = c.leader().core.propose_config(ConfigChange(kind, node_id, f"{node_id}:9000"))
    c.stabilize()
    return index


def test_a_new_server_is_added_catches_up_and_counts_toward_the_majority():
    c = Cluster(3)
    c.elect("n1")
    for i in range(5):
        c.propose(b"e%d" % i)
    c.add_empty("n4")
    _add(c, "n4")
    c.tick(3)
    assert c.nodes["n4"].applied_commands() == [b"e%d" % i for i in range(5)]
    assert c.nodes["n4"].core.config.voters == {"n1", "n2", "n3", "n4"}
    # With four voters a majority is three: two down means no commit.
    c.crash("n2")
    c.crash("n3")
    c.leader().core.propose(b"needs three of four")
    c.stabilize()
    assert c.nodes["n1"].core.log.committed < c.nodes["n1"].core.log.last_index()


def test_a_new_server_does_not_campaign_before_it_is_in_the_configuration():
    c = Cluster(3)
    c.elect("n1")
    newcomer = c.add_empty("n4")
    c.tick(50, nodes=["n4"])
    assert newcomer.role is Role.FOLLOWER and newcomer.core.term == 0


def test_a_config_change_waits_for_an_entry_of_the_leaders_term():
    """Ongaro, raft-dev 2015: a leader must commit an entry of its term before a change."""
    c = Cluster(3)
    c.filter = lambda m: not (m.sender == "n1" and m.to != "n1" and "Append" in type(m).__name__)
    c.nodes["n1"].core.campaign()
    c.stabilize()
    leader = c.nodes["n1"].core
    assert leader.role is Role.LEADER and not leader.committed_in_term()
    with pytest.raises(ProposalDropped):
        leader.propose_config(ConfigChange(ConfigChangeKind.ADD_VOTER, "n4", "n4:9000"))


def test_only_one_config_change_is_uncommitted_at_a_time():
    c = Cluster(3)
    c.elect("n1")
    c.crash("n2")
    c.crash("n3")  # nothing commits now
    leader = c.nodes["n1"].core
    leader.propose_config(ConfigChange(ConfigChangeKind.ADD_VOTER, "n4", "n4:9000"))
    with pytest.raises(ProposalDropped):
        leader.propose_config(ConfigChange(ConfigChangeKind.ADD_VOTER, "n5", "n5:9000"))


def test_a_configuration_takes_effect_when_appended_and_reverts_when_truncated():
    c = Cluster(3)
    c.elect("n1")
    c.isolate("n1")
    c.nodes["n1"].core.propose_config(ConfigChange(ConfigChangeKind.ADD_VOTER, "n4", "n4:9000"))
    c.stabilize()
    assert "n4" in c.nodes["n1"].core.config.ids  # in force though not committed
    c.elect("n2")
    c.propose(b"x")
    c.heal()
    c.tick(3)
    assert "n4" not in c.nodes["n1"].core.config.ids  # truncated away: reverted


def test_removing_a_follower_shrinks_the_majority():
    c = Cluster(3)
    c.elect("n1")
    c.leader().core.propose_config(ConfigChange(ConfigChangeKind.REMOVE, "n3"))
    c.stabilize()
    c.crash("n3")
    c.propose(b"with two voters")
    assert c.nodes["n1"].applied_commands() == [b"with two voters"]
    assert c.nodes["n1"].core.config.voters == {"n1", "n2"}


def test_a_removed_leader_steps_down_once_its_removal_commits():
    c = Cluster(3)
    c.elect("n1")
    c.leader().core.propose_config(ConfigChange(ConfigChangeKind.REMOVE, "n1"))
    c.stabilize()
    assert c.nodes["n1"].role is Role.FOLLOWER
    c.run_until(lambda: any(n.role is Role.LEADER for n in c.nodes.values() if n.id != "n1"))
    c.tick(50)
    assert c.nodes["n1"].role is Role.FOLLOWER  # not a voter: never campaigns again


def test_a_nonvoter_replicates_but_does_not_count():
    c = Cluster(3)
    c.elect("n1")
    c.add_empty("n4")
    _add(c, "n4", ConfigChangeKind.ADD_NONVOTER)
    c.propose(b"x")
    c.tick(2)
    assert c.nodes["n4"].applied_commands() == [b"x"]
    server = c.nodes["n1"].core.config.get("n4")
    assert server is not None and server.suffrage == Suffrage.NONVOTER
    c.tick(50, nodes=["n4"])
    assert c.nodes["n4"].role is Role.FOLLOWER


def test_impossible_config_changes_are_rejected():
    c = Cluster(1)
    c.elect("n1")
    with pytest.raises(ConfigChangeRejected):
        c.nodes["n1"].core.propose_config(ConfigChange(ConfigChangeKind.REMOVE, "n1"))
    with pytest.raises(ConfigChangeRejected):
        c.nodes["n1"].core.propose_config(ConfigChange(ConfigChangeKind.ADD_VOTER, "n2", ""))
    assert c.nodes["n1"].core.propose_config(ConfigChange(ConfigChangeKind.REMOVE, "nx")) is None


# --- snapshots and restarts ----------------------------------------------------------------------


def test_a_follower_behind_the_compacted_log_receives_a_snapshot():
    c = Cluster(3)
    c.elect("n1")
    c.crash("n3")
    for i in range(20):
        c.propose(b"s%d" % i)
    c.nodes["n1"].take_snapshot()
    c.nodes["n1"].core.propose(b"after snapshot")
    c.stabilize()
    c.restart("n3")
    c.tick(3)
    assert snapshot_messages(c), "a snapshot was sent"
    assert c.nodes["n3"].applied_commands() == [b"s%d" % i for i in range(20)] + [b"after snapshot"]
    assert c.nodes["n3"].disk.snapshot.index >= 20


def test_a_new_server_joins_through_a_snapshot():
    c = Cluster(3)
    c.elect("n1")
    for i in range(10):
        c.propose(b"j%d" % i)
    c.nodes["n1"].take_snapshot()
    c.add_empty("n4")
    _add(c, "n4")
    c.tick(3)
    assert c.nodes["n4"].applied_commands() == [b"j%d" % i for i in range(10)]
    assert c.nodes["n4"].core.config.voters == {"n1", "n2", "n3", "n4"}


def test_restart_restores_term_vote_log_and_configuration():
    c = Cluster(3)
    c.elect("n1")
    for i in range(5):
        c.propose(b"r%d" % i)
    before = c.nodes["n2"].core
    term, vote, last = before.term, before.vote, before.log.last_index()
    c.crash("n2")
    c.restart("n2")
    after = c.nodes["n2"].core
    assert (after.term, after.vote, after.log.last_index()) == (term, vote, last)
    assert after.config.voters == {"n1", "n2", "n3"}
    assert after.log.applied == c.nodes["n2"].applied[-1].index  # nothing applied twice
    c.propose(b"after restart")
    assert c.nodes["n2"].applied_commands()[-1] == b"after restart"


def test_entries_are_applied_once_and_in_order_across_restarts():
    c = Cluster(3, seed=9)
    c.elect("n1")
    for round_ in range(5):
        for i in range(4):
            c.propose(b"%d-%d" % (round_, i))
        victim = ["n2", "n3"][round_ % 2]
        c.crash(victim)
        c.restart(victim)
    c.tick(3)
    for node in c.nodes.values():
        indexes = [e.index for e in node.applied]
        assert indexes == list(range(1, len(indexes) + 1))
        assert len([e for e in node.applied if e.kind == EntryKind.NORMAL]) == 20


def test_a_proposal_larger_than_one_entry_may_be_is_refused_and_changes_nothing():
    from raft_zmq.core.ready import ProposalTooLarge

    c = Cluster(1, options=options(entry_bytes_max=100))
    c.elect("n1")
    last = c.nodes["n1"].core.log.last_index()
    with pytest.raises(ProposalTooLarge):
        c.nodes["n1"].core.propose(b"x" * 101)
    assert c.nodes["n1"].core.log.last_index() == last
    c.propose(b"x" * 100)


def test_a_node_that_installed_a_snapshot_streams_it_on_when_it_leads():
    """Found by the simulator: a leader whose log begins after an installed snapshot must still
    have that snapshot to send to a server that is further behind."""
    c = Cluster(3)
    c.elect("n1")
    c.crash("n3")
    for i in range(20):
        c.propose(b"t%d" % i)
    c.nodes["n1"].take_snapshot()
    c.restart("n3")
    c.tick(3)
    assert c.nodes["n3"].disk.snapshot.index >= 20  # n3's log now starts after the snapshot
    c.crash("n1")
    c.elect("n3")
    c.add_empty("n4")
    _add(c, "n4")
    c.tick(5)
    assert c.nodes["n4"].applied_commands() == [b"t%d" % i for i in range(20)]


def test_a_leader_that_removed_itself_and_stepped_down_before_the_removal_commits_campaigns():
    """Found by the simulator (seed 85 of plant (i)'s profile, issue 10): n1 leads {n1, n2} and
    appends its own removal; cut off, it steps down (check-quorum) before n2 has the entry. Now
    n1's log is the longer one, so n2 can never win n1's vote, and n1, not a voter of its latest
    configuration, never campaigned: no leader, for ever. Thesis §4.2.2: a server not in its
    latest configuration still starts elections while that configuration is uncommitted (it may
    be needed), not counting its own vote."""
    c = Cluster(2)
    c.elect("n1")
    c.propose(b"x")
    c.isolate("n1")
    removal = c.nodes["n1"].core.propose_config(ConfigChange(ConfigChangeKind.REMOVE, "n1"))
    c.stabilize()
    assert c.nodes["n1"].core.config.voters == {"n2"}  # in force at n1, on n1 alone
    c.tick(c.options.election_timeout_ticks * 2, nodes=["n1"])  # check-quorum: steps down
    assert c.nodes["n1"].role is Role.FOLLOWER
    c.heal()
    c.run_until(lambda: c.nodes["n2"].role is Role.LEADER)
    c.stabilize()
    n2 = c.nodes["n2"].core
    assert n2.config.voters == {"n2"} and n2.log.committed >= removal  # the removal committed
    c.tick(50)
    assert c.nodes["n1"].role is Role.FOLLOWER  # removed for good: it campaigns no more
    assert c.nodes["n2"].role is Role.LEADER
