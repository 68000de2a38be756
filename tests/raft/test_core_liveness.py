"""Liveness features beyond the paper's core: pre-vote and check-quorum (thesis §9.6, §6.2; etcd
and hashicorp turn both on), leader stickiness, and leadership transfer (thesis §3.10)."""

from __future__ import annotations

from raft_zmq.core.ready import CoreOptions, ProposalDropped, Role
from raft_zmq.core.types import RequestVote, TimeoutNow

from .harness import Cluster


def options(**kw) -> CoreOptions:
    base = dict(election_timeout_ticks=10, heartbeat_interval_ticks=1)
    base.update(kw)
    return CoreOptions(**base)


def _rejoin_after_isolation(pre_vote: bool) -> tuple[int, int, str, str]:
    c = Cluster(3, seed=5, options=options(pre_vote=pre_vote, check_quorum=pre_vote))
    c.elect("n1")
    term_before = c.nodes["n1"].core.term
    c.isolate("n3")
    c.tick(100)  # n3 times out again and again on its own
    c.heal()
    c.tick(30)
    return term_before, c.nodes["n1"].core.term, c.leader().id, c.nodes["n3"].core.leader or ""


def test_prevote_keeps_a_rejoining_partitioned_node_from_disrupting_the_leader():
    term_before, term_after, leader, n3_sees = _rejoin_after_isolation(pre_vote=True)
    assert term_after == term_before
    assert leader == "n1" and n3_sees == "n1"


def test_without_prevote_the_rejoining_node_forces_a_new_term():
    """The control experiment: the test above can fail, and this is how."""
    term_before, term_after, _leader, _ = _rejoin_after_isolation(pre_vote=False)
    assert term_after > term_before


def test_a_partitioned_node_with_prevote_does_not_raise_its_term():
    c = Cluster(3, seed=2)
    c.elect("n1")
    term = c.nodes["n3"].core.term
    c.isolate("n3")
    c.tick(100)
    assert c.nodes["n3"].core.term == term
    assert c.nodes["n3"].role is Role.PRE_CANDIDATE


def test_check_quorum_a_leader_cut_off_from_the_majority_steps_down():
    c = Cluster(3, seed=1)
    c.elect("n1")
    c.isolate("n1")
    c.tick(c.options.election_timeout_ticks * 2 + 1, nodes=["n1"])
    assert c.nodes["n1"].role is Role.FOLLOWER
    assert c.nodes["n1"].core.leader is None


def test_check_quorum_a_leader_with_its_majority_stays():
    c = Cluster(5, seed=1)
    c.elect("n1")
    c.partition(["n1", "n2", "n3"], ["n4", "n5"])
    c.tick(50)
    assert c.nodes["n1"].role is Role.LEADER
    assert c.leader().id == "n1"


def test_leader_stickiness_a_voter_in_a_lease_ignores_a_disruptive_candidate():
    c = Cluster(3)
    c.elect("n1")
    voter = c.nodes["n2"].core
    term = voter.term
    voter.step(RequestVote(term + 1, "n3", "n2", 100, term, pre_vote=False))
    assert voter.term == term and voter.vote == "n1"  # unchanged: no new term was adopted
    assert voter.dropped.get("vote_request_in_lease") == 1


def test_leadership_transfer_hands_over_to_an_up_to_date_target():
    c = Cluster(3, seed=4)
    c.elect("n1")
    c.propose(b"before")
    term = c.nodes["n1"].core.term
    c.nodes["n1"].core.transfer_leadership("n3")
    c.stabilize()
    assert c.leader().id == "n3"
    assert c.nodes["n3"].core.term == term + 1
    c.propose(b"after")
    c.tick(2)
    for node in c.nodes.values():
        assert node.applied_commands() == [b"before", b"after"]


def test_leadership_transfer_first_brings_a_lagging_target_up_to_date():
    c = Cluster(3, seed=4)
    c.elect("n1")
    c.isolate("n3")
    for i in range(10):
        c.nodes["n1"].core.propose(b"x%d" % i)
    c.stabilize()
    c.heal()
    c.delivered.clear()
    c.nodes["n1"].core.transfer_leadership("n3")
    c.stabilize()
    timeout_now = [m for m in c.delivered if isinstance(m, TimeoutNow)]
    assert len(timeout_now) == 1
    assert c.leader().id == "n3"
    assert len(c.nodes["n3"].applied_commands()) == 10


def test_proposals_are_refused_during_a_transfer_and_resume_if_it_fails():
    c = Cluster(3, seed=4)
    c.elect("n1")
    c.crash("n3")
    leader = c.nodes["n1"].core
    leader.transfer_leadership("n3")
    c.stabilize()
    try:
        leader.propose(b"during")
        raise AssertionError("a proposal during a transfer must be refused")
    except ProposalDropped:
        pass
    c.tick(c.options.election_timeout_ticks, nodes=["n1", "n2"])
    assert leader.lead_transferee is None
    c.propose(b"after the failed transfer")


def test_elections_settle_under_message_loss():
    """Randomized timeouts avoid endless split votes even with a lossy network."""
    for seed in range(10):
        c = Cluster(5, seed=seed)
        c.drop_rate = 0.2
        c.run_until(lambda c=c: len(c.leaders()) == 1, max_ticks=300)
