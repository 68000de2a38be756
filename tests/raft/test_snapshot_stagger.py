"""Servers take their snapshots at staggered indexes (raft_zmq/driver/driver.py,
``snapshot_due``; docs/raft.md, "Snapshots and compaction"): taken at one index, every node
stalled at once and elections followed (docs/reliability.md, finding 2)."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from raft_zmq.core.types import ClusterConfig, Server
from raft_zmq.driver.driver import snapshot_due


def member(node_id: str, n: int) -> SimpleNamespace:
    config = ClusterConfig(tuple(Server(f"n{i}", f"h:{i}") for i in range(n)))
    return SimpleNamespace(id=node_id, config=config)


@given(
    base=st.integers(0, 10**9),
    interval=st.integers(1, 10**6),
    n=st.integers(1, 7),
    rank=st.integers(0, 6),
)
def test_the_next_snapshot_is_between_half_and_one_and_a_half_intervals_away(
    base, interval, n, rank
):
    due = snapshot_due(base, interval, member(f"n{rank % n}", n))
    assert base + interval / 2 <= due < base + interval * 3 / 2 + 1


@pytest.mark.parametrize("n", [3, 5])
def test_servers_from_one_base_snapshot_evenly_apart_and_stay_apart(n):
    interval = 5_000
    bases = {f"n{i}": 0 for i in range(n)}
    for _ in range(20):
        dues = sorted(snapshot_due(bases[i], interval, member(i, n)) for i in bases)
        gaps = [b - a for a, b in itertools.pairwise(dues)]
        assert min(gaps) >= interval // n - 1, dues
        for i in bases:  # each takes its snapshot when due, and goes on from there
            bases[i] = snapshot_due(bases[i], interval, member(i, n))


def test_a_follower_that_installed_the_leader_s_snapshot_keeps_its_own_grid():
    interval, n = 5_000, 3
    leader_at = snapshot_due(0, interval, member("n0", n))
    follower_next = snapshot_due(leader_at, interval, member("n1", n))
    leader_next = snapshot_due(leader_at, interval, member("n0", n))
    assert abs(follower_next - leader_next) >= interval // n - 1


def test_a_cluster_of_one_snapshots_every_interval_as_before():
    assert [snapshot_due(b, 10, member("n0", 1)) for b in (0, 10, 13, 20)] == [10, 20, 20, 30]
