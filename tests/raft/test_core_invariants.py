"""RaftCore._check_invariants(), run at the end of every step, tick, campaign and advance: each
invariant is broken here by hand and must stop the core at the next input. Every other core test
runs with the checks on, so these show that the checks can fail at all."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from raft_zmq.core.raft import RaftCore

from .harness import Cluster


def _vote_again(core: RaftCore) -> None:
    core.vote = "n3" if core.vote != "n3" else "n1"


def _term_back(core: RaftCore) -> None:
    core.term -= 1


def _commit_past_the_log(core: RaftCore) -> None:
    core.log.committed = core.log.last_index() + 1


def _commit_back(core: RaftCore) -> None:
    core.log.committed -= 1
    core.log.applied = min(core.log.applied, core.log.committed)


def _apply_uncommitted(core: RaftCore) -> None:
    core.log.applied = core.log.committed + 1


def _follower_tracks_peers(core: RaftCore) -> None:
    core._progress = {"n1": core._new_progress(1)}


FOLLOWER_BREAKS: dict[str, tuple[Callable[[RaftCore], None], str]] = {
    "a second vote in one term": (_vote_again, "a second vote"),
    "the term goes back": (_term_back, "the term went back"),
    "commit beyond the last index": (_commit_past_the_log, "last index"),
    "the commit index goes back": (_commit_back, "commit index went back"),
    "applied beyond commit": (_apply_uncommitted, "applied <= committed"),
    "a follower with progress": (_follower_tracks_peers, "only a leader"),
}


@pytest.mark.parametrize("name", sorted(FOLLOWER_BREAKS))
def test_a_broken_follower_invariant_stops_the_core_at_its_next_input(name: str) -> None:
    c = Cluster(3)
    c.elect("n1")
    c.propose(b"x")
    core = c.nodes["n2"].core
    assert core.vote == "n1" or name != "a second vote in one term"
    core.tick()  # intact: no complaint
    corrupt, message = FOLLOWER_BREAKS[name]
    corrupt(core)
    with pytest.raises(AssertionError, match=message):
        core.tick()


def _forget_self(core: RaftCore) -> None:
    del core._progress[core.id]


def _count_undurable_entry(core: RaftCore) -> None:
    core._progress[core.id].match = core.log.last_index() + 1


def _lead_without_voting(core: RaftCore) -> None:
    core.vote = None
    core._checked_vote = None  # past the one-vote check


LEADER_BREAKS: dict[str, tuple[Callable[[RaftCore], None], str]] = {
    "a leader that does not track itself": (_forget_self, "tracks itself"),
    "a leader that counts what is not durable": (_count_undurable_entry, "durable"),
    "a leader without its own vote": (_lead_without_voting, "voted for itself"),
}


@pytest.mark.parametrize("name", sorted(LEADER_BREAKS))
def test_a_broken_leader_invariant_stops_the_core_at_its_next_input(name: str) -> None:
    c = Cluster(3)
    c.elect("n1")
    core = c.nodes["n1"].core
    corrupt, message = LEADER_BREAKS[name]
    corrupt(core)
    with pytest.raises(AssertionError, match=message):
        core.tick()
