"""The simulated disk (a crash loses the write in flight, nothing else) and network (partitions,
stalls, drops, duplicates, a crashed sender's queue, healing)."""

from __future__ import annotations

import random

import pytest

from raft_zmq.core.types import ClusterConfig, Entry, EntryKind, HardState, Server, SnapshotMeta
from simulations.trace import Trace
from simulations.world.disk import SimLog
from simulations.world.loop import EventLoop
from simulations.world.network import Packet, SimNetwork
from simulations.world.profile import NetworkProfile

CONFIG = ClusterConfig((Server("a", "a:1"), Server("b", "b:1"), Server("c", "c:1")))
NODES = ("a", "b", "c")


def entries(first: int, last: int, term: int) -> list[Entry]:
    return [Entry(i, term, EntryKind.NORMAL, b"x") for i in range(first, last + 1)]


# --- disk ----------------------------------------------------------------------------------------


def test_a_write_is_invisible_until_its_sync_completes():
    log = SimLog.bootstrapped(CONFIG)
    write = log.begin_write(HardState(2, "a", 1), entries(2, 3, 2), None)
    assert log.write_in_flight and log.last_index() == 1 and log.hard_state.term == 1
    log.complete_write(write)
    assert not log.write_in_flight and log.last_index() == 3 and log.hard_state.term == 2


def test_a_crash_loses_the_write_in_flight_and_nothing_that_completed():
    log = SimLog.bootstrapped(CONFIG)
    log.complete_write(log.begin_write(HardState(2, "a", 1), entries(2, 3, 2), None))
    log.begin_write(HardState(3, "b", 3), entries(4, 6, 3), None)
    lost = log.crash()
    assert lost is not None and len(lost.entries) == 3
    assert log.last_index() == 3 and log.hard_state == HardState(2, "a", 1)
    assert log.writes_lost == 1 and log.crash() is None


def test_a_completed_write_reports_the_entries_it_truncated():
    log = SimLog.bootstrapped(CONFIG)
    log.complete_write(log.begin_write(None, entries(2, 5, 2), None))
    done = log.complete_write(log.begin_write(None, entries(4, 4, 3), None))
    assert done.prev_term == 2
    assert [(e.index, e.term) for e in done.replaced] == [(4, 2), (5, 2)]
    assert log.last_index() == 4 and log.term(4) == 3


def test_a_snapshot_beyond_a_disagreeing_log_replaces_it():
    log = SimLog.bootstrapped(CONFIG)
    log.complete_write(log.begin_write(None, entries(2, 5, 2), None))
    done = log.complete_write(log.begin_write(None, [], SnapshotMeta(4, 3, CONFIG)))
    assert [(e.index, e.term) for e in done.replaced] == [(5, 2)]
    assert log.first_index() == 5 and log.last_index() == 4


def test_only_one_write_may_be_in_flight():
    log = SimLog.bootstrapped(CONFIG)
    log.begin_write(None, entries(2, 2, 2), None)
    with pytest.raises(AssertionError):
        log.begin_write(None, entries(3, 3, 2), None)


# --- network -------------------------------------------------------------------------------------


def network(**overrides) -> tuple[EventLoop, SimNetwork, list[Packet]]:
    profile = dict(
        delay_min_us=100,
        delay_max_us=100,
        drop_rate=0.0,
        duplicate_rate=0.0,
        reorder_rate=0.0,
        reorder_delay_max_us=0,
        client_drop_rate=0.0,
        send_loss_window_us=0,
    )
    profile.update(overrides)
    loop, received = EventLoop(), []
    net = SimNetwork(
        loop, random.Random(1), NetworkProfile(**profile), Trace(), NODES, received.append
    )
    return loop, net, received


def test_a_partition_cuts_both_ways_between_its_sides_only():
    loop, net, received = network()
    net.partition([["a"], ["b", "c"]])
    for src, dst in (("a", "b"), ("b", "a"), ("b", "c"), ("c", "b"), ("a", "c")):
        net.send(src, dst, f"{src}{dst}")
    loop.run_until(10_000)
    assert sorted(p.payload for p in received) == ["bc", "cb"]
    assert net.stats.cut == 3


def test_a_one_way_cut_leaves_the_other_direction():
    loop, net, received = network()
    net.cut("a", "b")
    net.send("a", "b", "ab")
    net.send("b", "a", "ba")
    loop.run_until(10_000)
    assert [p.payload for p in received] == ["ba"]


def test_clients_reach_every_node_whatever_the_partition():
    loop, net, received = network()
    net.isolate("a")
    net.send("client-0", "a", "req")
    net.send("a", "client-0", "resp")
    loop.run_until(10_000)
    assert sorted(p.payload for p in received) == ["req", "resp"]


def test_a_stalled_link_holds_messages_and_lets_them_through_in_order_when_healed():
    loop, net, received = network()
    net.stall("a", "b")
    for i in range(3):
        net.send("a", "b", i)
    loop.run_until(10_000)
    assert received == []
    net.heal_links()
    loop.run_until(20_000)
    assert [p.payload for p in received] == [0, 1, 2]


def test_a_crash_loses_what_was_still_in_the_senders_queue():
    loop, net, received = network(send_loss_window_us=500)
    net.send("a", "b", "early")
    loop.run_until(1_000)
    net.send("a", "b", "late")
    net.stall("a", "c")
    net.send("a", "c", "held")
    net.crashed("a")
    net.heal_links()
    loop.run_until(10_000)
    assert [p.payload for p in received] == ["early"]
    assert net.stats.lost_in_crash == 2


def test_drops_and_duplicates_follow_their_rates_and_stop_after_healing():
    loop, net, received = network(drop_rate=0.3, duplicate_rate=0.3)
    for i in range(1000):
        net.send("a", "b", i)
    loop.run_until(10_000)
    assert 200 < net.stats.dropped < 400 and 150 < net.stats.duplicated < 300
    assert len(received) == 1000 - net.stats.dropped + net.stats.duplicated
    net.heal()
    received.clear()
    for i in range(100):
        net.send("a", "b", i)
    loop.run_until(20_000)
    assert len(received) == 100


def test_disconnected_nodes_stay_cut_until_reconnected():
    loop, net, received = network()
    net.disconnect("a")
    net.heal_links()  # a partition ending does not reconnect it
    net.send("a", "b", 1)
    net.reconnect("a")
    net.send("a", "b", 2)
    loop.run_until(10_000)
    assert [p.payload for p in received] == [2]


def test_events_at_the_same_time_run_in_the_order_they_were_scheduled():
    loop, seen = EventLoop(), []
    for i in range(5):
        loop.at(100, seen.append, i)
    loop.at(50, seen.append, "first")
    loop.run_until(100)
    assert seen == ["first", 0, 1, 2, 3, 4] and loop.now_us == 100
