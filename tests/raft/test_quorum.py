"""The commit-index computation against a deliberately naive one (etcd's quorum/quick_test.go)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from raft_zmq.core.quorum import VoteResult, majority_index, tally


def naive_majority_index(voters: list[str], acked: dict[str, int]) -> int:
    """Try every candidate index from the largest down; the first held by a majority wins."""
    if not voters:
        return 0
    candidates = sorted({acked.get(v, 0) for v in voters} | {0}, reverse=True)
    for index in candidates:
        holders = sum(1 for v in voters if acked.get(v, 0) >= index)
        if holders * 2 > len(voters):
            return index
    return 0


voter_ids = st.lists(
    st.sampled_from([f"n{i}" for i in range(9)]), min_size=0, max_size=9, unique=True
)


@given(voters=voter_ids, data=st.data())
def test_majority_index_matches_the_naive_computation(voters, data):
    acked = {
        v: data.draw(st.integers(min_value=0, max_value=50))
        for v in voters
        if data.draw(st.booleans())
    }
    acked["outsider"] = data.draw(st.integers(min_value=0, max_value=100))  # not a voter
    assert majority_index(voters, acked) == naive_majority_index(voters, acked)


@given(voters=voter_ids.filter(bool), data=st.data())
def test_tally_matches_counting(voters, data):
    votes = {}
    for v in voters:
        choice = data.draw(st.sampled_from(["yes", "no", "none"]))
        if choice != "none":
            votes[v] = choice == "yes"
    yes = sum(1 for v in voters if votes.get(v) is True)
    no = sum(1 for v in voters if votes.get(v) is False)
    need = len(voters) // 2 + 1
    expected = (
        VoteResult.WON
        if yes >= need
        else VoteResult.LOST
        if len(voters) - no < need
        else VoteResult.PENDING
    )
    assert tally(voters, votes) == expected
