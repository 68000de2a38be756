"""Who has a majority: the commit index a set of match indexes supports, and election tallies.

Kept apart from the role logic so that it can be checked against a deliberately naive version over
many random cases (tests/raft/test_quorum.py), as etcd's quorum/quick_test.go does.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping

from raft_zmq.core.types import NodeId


def majority_size(voter_count: int) -> int:
    return voter_count // 2 + 1


def majority_index(voters: Collection[NodeId], acked: Mapping[NodeId, int]) -> int:
    """The largest index that a majority of ``voters`` has acknowledged (a voter missing from
    ``acked`` counts as 0). With no voters there is no majority: returns 0.

    Sort the voters' indexes in descending order; the majority-th one is held by at least a
    majority. Used for commit indexes and, with heartbeat rounds in place of indexes, for ReadIndex.
    """
    if not voters:
        return 0
    indexes = sorted((acked.get(v, 0) for v in voters), reverse=True)
    return indexes[majority_size(len(indexes)) - 1]


class VoteResult(enum.Enum):
    PENDING = "pending"
    WON = "won"
    LOST = "lost"


def tally(voters: Collection[NodeId], votes: Mapping[NodeId, bool]) -> VoteResult:
    """Won once a majority of ``voters`` granted; lost once a majority can no longer be reached."""
    need = majority_size(len(voters))
    granted = sum(1 for v in voters if votes.get(v) is True)
    missing = sum(1 for v in voters if v not in votes)
    if granted >= need:
        return VoteResult.WON
    if granted + missing < need:
        return VoteResult.LOST
    return VoteResult.PENDING
