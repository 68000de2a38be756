"""The transport between real ZeroMQ sockets on 127.0.0.1: delivery, restarts, bounded drops,
hostile frames, the fault layer end to end, and a stress run where every message is accounted for.

Nothing waits with a fixed sleep: connectivity is polled (send a probe, wait a little for it, try
again) under a ``trio.fail_after`` deadline, and "nothing else arrived" is shown by a marker
message sent after the others on the same connection, which ZeroMQ delivers in order.
"""

from __future__ import annotations

import random
import socket
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing
import zmq

from raft_zmq.codec import FRAME_BYTES_MAX, encode
from raft_zmq.core.types import (
    AppendEntries,
    Entry,
    Heartbeat,
    Message,
    SnapshotChunk,
    SnapshotMeta,
)
from raft_zmq.faults import FaultSpec
from raft_zmq.transport import Transport, TransportConfig, tcp_endpoint

DEADLINE_S = 30.0  # generous for a loaded 2-core machine; a hang fails instead of blocking CI
PROBE_WAIT_S = 0.02  # how long one connectivity probe waits before the next is sent
MARKER_SEQ = 10**9  # read_seq of the "nothing else follows" marker
PROBE_SEQ = 2**63 - 1  # read_seq of connectivity probes, skipped by the helpers below


def hb(sender: str, to: str, seq: int = 0, term: int = 1) -> Heartbeat:
    return Heartbeat(term, sender, to, 0, seq)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@asynccontextmanager
async def transports(*node_ids: str, **kwargs) -> AsyncIterator[dict[str, Transport]]:
    """Running transports, all peers of each other (not yet known to be connected)."""
    nodes = {node_id: Transport(node_id, "127.0.0.1:0", **kwargs) for node_id in node_ids}
    async with trio.open_nursery() as nursery:
        for node in nodes.values():
            await nursery.start(node.run)
        addresses = {node_id: node.address for node_id, node in nodes.items()}
        for node in nodes.values():
            node.set_peers(addresses)
        yield nodes
        nursery.cancel_scope.cancel()


def _is_probe(msg: Message) -> bool:
    return getattr(msg, "read_seq", None) == PROBE_SEQ


async def connect(sender: Transport, receiver: Transport) -> None:
    """Returns once a probe from ``sender`` has reached ``receiver`` (probes are consumed)."""
    while True:
        sender.send_nowait(hb(sender.node_id, receiver.node_id, seq=PROBE_SEQ))
        with trio.move_on_after(PROBE_WAIT_S):
            batch = await receiver.receive_batch(1_000)
            if any(m.sender == sender.node_id and _is_probe(m) for m in batch):
                return


async def connect_all(nodes: dict[str, Transport]) -> None:
    for a in nodes.values():
        for b in nodes.values():
            if a is not b:
                await connect(a, b)


async def receive_until_markers(receiver: Transport, *senders: str) -> list[Message]:
    """Everything (but probes) ``receiver`` gets until each sender's marker has arrived; the
    markers are not in the result."""
    got: list[Message] = []
    waiting = set(senders)
    while waiting:
        for msg in await receiver.receive_batch(1_000):
            seq = getattr(msg, "read_seq", None)
            if seq == MARKER_SEQ:
                waiting.discard(msg.sender)
            elif seq != PROBE_SEQ:
                got.append(msg)
    return got


def send_marker(sender: Transport, to: str) -> None:
    assert sender.send_nowait(hb(sender.node_id, to, seq=MARKER_SEQ))


# --- delivery ------------------------------------------------------------------------------------


async def test_port_zero_binds_an_ephemeral_port_and_reports_it() -> None:
    node = Transport("a", "127.0.0.1:0")
    async with trio.open_nursery() as nursery:
        started_address = await nursery.start(node.run)
        host, _, port = node.address.rpartition(":")
        assert host == "127.0.0.1" and int(port) > 0
        assert started_address == node.address
        await node.aclose()


async def test_three_transports_exchange_messages_in_every_direction() -> None:
    with trio.fail_after(DEADLINE_S):
        async with transports("a", "b", "c") as nodes:
            await connect_all(nodes)
            sent: dict[tuple[str, str], list[Message]] = {}
            for a in nodes:
                for b in nodes:
                    if a != b:
                        sent[a, b] = [hb(a, b, seq=n) for n in range(100)]
                        sent[a, b].append(
                            AppendEntries(2, a, b, 4, 1, (Entry(5, 2, 0, b"x" * 300),), 3)
                        )
                        for msg in sent[a, b]:
                            assert nodes[a].send_nowait(msg)
                        send_marker(nodes[a], b)
            for b in nodes:
                got = await receive_until_markers(nodes[b], *(a for a in nodes if a != b))
                for a in nodes:
                    if a != b:
                        assert [m for m in got if m.sender == a] == sent[a, b]
            for node in nodes.values():
                stats = node.stats()
                assert stats.sent == stats.received  # connected, no faults: nothing lost
                assert stats.bytes_out > 0 and stats.bytes_in > 0


async def test_a_restarted_receiver_on_the_same_port_receives_again() -> None:
    with trio.fail_after(DEADLINE_S):
        async with transports("a", "b") as nodes:
            a, b = nodes["a"], nodes["b"]
            await connect(a, b)
            await b.aclose()
            b2 = Transport("b", b.address)
            async with trio.open_nursery() as nursery:
                await nursery.start(b2.run)
                b2.set_peers({"a": a.address})
                await connect(a, b2)  # a's DEALER reconnected by itself
                await connect(b2, a)
                await b2.aclose()


async def test_a_restarted_sender_takes_over_its_old_connection() -> None:
    """ROUTER_HANDOVER: a node that restarts while its old TCP connection still looks alive to
    the receiver (a crash without FIN, a NAT) must be heard on its new connection at once."""
    with trio.fail_after(DEADLINE_S):
        async with transports("b") as nodes:
            b = nodes["b"]
            context = zmq.Context()
            old = context.socket(zmq.DEALER)  # the old "a": connected, then silent forever
            old.setsockopt(zmq.LINGER, 0)
            old.setsockopt(zmq.ROUTING_ID, b"a")
            old.setsockopt(zmq.RECONNECT_IVL, -1)  # a dead process does not reconnect
            old.connect(tcp_endpoint(b.address))
            try:
                while True:  # the old connection is established and known to b by identity "a"
                    old.send(encode(hb("a", "b", seq=1)))
                    with trio.move_on_after(PROBE_WAIT_S):
                        await b.receive_batch(100)
                        break
                a2 = Transport("a", "127.0.0.1:0")
                async with trio.open_nursery() as nursery:
                    await nursery.start(a2.run)
                    a2.set_peers({"b": b.address})
                    await connect(a2, b)
                    await a2.aclose()
            finally:
                old.close(linger=0)
                context.term()


# --- bounded, counted drops ----------------------------------------------------------------------


async def test_sending_to_an_unreachable_peer_drops_and_counts_without_queueing() -> None:
    async with transports("a") as nodes:
        a = nodes["a"]
        a.set_peers({"z": f"127.0.0.1:{free_port()}"})  # nothing listens there
        for n in range(20_000):
            assert not a.send_nowait(hb("a", "z", seq=n))
        stats = a.stats()
        assert stats.dropped_unreachable == 20_000
        assert stats.sent == 0 and stats.bytes_out == 0


async def test_a_peer_that_stops_reading_bounds_what_is_queued_for_it() -> None:
    hwm = 10
    context = zmq.Context()
    sink = context.socket(zmq.ROUTER)  # connected, never reads
    sink.setsockopt(zmq.LINGER, 0)
    sink.setsockopt(zmq.RCVHWM, hwm)
    sink.bind("tcp://127.0.0.1:0")
    sink_address = sink.getsockopt(zmq.LAST_ENDPOINT).decode().removeprefix("tcp://")
    chunk = SnapshotChunk(1, "a", "z", SnapshotMeta(), 0, 1 << 30, b"x" * 65_536, False)
    try:
        async with transports("a", config=TransportConfig(peer_send_hwm_messages=hwm)) as nodes:
            a = nodes["a"]
            a.set_peers({"z": sink_address})
            attempts = 1
            with trio.fail_after(DEADLINE_S):
                while not a.send_nowait(chunk):  # until connected
                    attempts += 1
                    await trio.sleep(PROBE_WAIT_S)
            for _ in range(3_000):
                a.send_nowait(chunk)
            first = a.stats()
            for _ in range(3_000):
                a.send_nowait(chunk)
            second = a.stats()
    finally:
        sink.close(linger=0)
        context.term()
    # ZeroMQ's queues hold 2 * hwm messages; TCP buffers a few MB more (64 KiB each).
    assert first.sent < 600
    assert first.sent + first.dropped_unreachable == attempts + 3_000
    assert second.sent - first.sent < 100  # nothing more moves: no growth
    assert second.dropped_unreachable - first.dropped_unreachable > 2_900


async def test_an_unknown_recipient_is_dropped_and_counted() -> None:
    async with transports("a") as nodes:
        assert not nodes["a"].send_nowait(hb("a", "nobody"))
        assert nodes["a"].stats().dropped_unknown_peer == 1


async def test_a_message_too_large_for_a_frame_is_not_sent() -> None:
    with trio.fail_after(DEADLINE_S):
        async with transports("a", "b") as nodes:
            await connect(nodes["a"], nodes["b"])
            entry = Entry(1, 1, 0, b"x" * (FRAME_BYTES_MAX + 1))
            assert not nodes["a"].send_nowait(AppendEntries(1, "a", "b", 0, 0, (entry,), 0))
            assert nodes["a"].stats().dropped_oversize_out == 1


async def test_a_full_inbound_channel_drops_and_counts_instead_of_blocking_the_socket() -> None:
    config = TransportConfig(inbound_queue_max_messages=4)
    with trio.fail_after(DEADLINE_S):
        async with transports("a", "b", config=config) as nodes:
            a, b = nodes["a"], nodes["b"]
            # One probe only (IMMEDIATE refuses them until connected), so none is left over.
            while not a.send_nowait(hb("a", "b", seq=PROBE_SEQ)):
                await trio.sleep(PROBE_WAIT_S)
            assert await b.receive_batch(10) == [hb("a", "b", seq=PROBE_SEQ)]
            base = b.stats()
            for n in range(10):  # nobody takes from b's channel meanwhile
                assert a.send_nowait(hb("a", "b", seq=n))
            while b.stats().received + b.stats().dropped_inbound_full < base.received + 10:
                await trio.sleep(PROBE_WAIT_S)
            got = await b.receive_batch(100)
            assert [m.read_seq for m in got] == [0, 1, 2, 3]  # the first four, in order
            assert b.stats().dropped_inbound_full - base.dropped_inbound_full == 6
            await connect(a, b)  # the receive task is still running


async def test_hostile_frames_are_dropped_and_counted_while_valid_traffic_continues() -> None:
    with trio.fail_after(DEADLINE_S):
        async with transports("a", "b") as nodes:
            a, b = nodes["a"], nodes["b"]
            await connect(a, b)
            context = zmq.Context()
            raw = context.socket(zmq.DEALER)
            raw.setsockopt(zmq.LINGER, 0)
            raw.setsockopt(zmq.ROUTING_ID, b"mallory")
            raw.connect(tcp_endpoint(b.address))
            try:
                while True:  # until the raw socket is connected and heard
                    raw.send(encode(hb("mallory", "b", seq=PROBE_SEQ)))
                    with trio.move_on_after(PROBE_WAIT_S):
                        if any(m.sender == "mallory" for m in await b.receive_batch(100)):
                            break
                base = b.stats()
                hostile = [
                    [b"\x01\x05garbage"],  # does not decode
                    [b""],
                    [encode(hb("a", "b", seq=7))],  # claims to be "a": wrong identity
                    [encode(hb("mallory", "c"))],  # addressed to another node
                    [encode(hb("mallory", "b")), b"extra part"],  # not one frame
                    [b"\x01\x05" + b"\x00" * FRAME_BYTES_MAX],  # above the frame limit
                ]
                for n, parts in enumerate(hostile):
                    raw.send_multipart(parts)
                    assert a.send_nowait(hb("a", "b", seq=n))
                raw.send(encode(hb("mallory", "b", seq=MARKER_SEQ)))
                send_marker(a, "b")
                got = await receive_until_markers(b, "mallory", "a")
            finally:
                raw.close(linger=0)
                context.term()
            assert got == [hb("a", "b", seq=n) for n in range(len(hostile))]
            stats = b.stats()
            assert stats.dropped_decode - base.dropped_decode == 3
            assert stats.dropped_identity - base.dropped_identity == 1
            assert stats.dropped_misaddressed - base.dropped_misaddressed == 1
            assert stats.dropped_oversize_in - base.dropped_oversize_in == 1


# --- peers and closing ---------------------------------------------------------------------------


async def test_set_peers_connects_new_and_moved_peers_and_forgets_removed_ones() -> None:
    with trio.fail_after(DEADLINE_S):
        async with transports("a", "b", "c") as nodes:
            a, b, c = nodes["a"], nodes["b"], nodes["c"]
            assert a.peers == {"b": b.address, "c": c.address}  # its own ID was skipped
            a.set_peers({"b": b.address})
            assert not a.send_nowait(hb("a", "c"))
            assert a.stats().dropped_unknown_peer == 1
            a.set_peers({"b": c.address})  # "b" moved (to where c listens)
            while c.stats().dropped_misaddressed == 0:  # c gets a's message for "b": refused
                a.send_nowait(hb("a", "b"))
                await trio.sleep(PROBE_WAIT_S)
            with pytest.raises(ValueError):
                a.set_peers({"b": b.address, "d": "no-port"})
            with pytest.raises(ValueError):
                a.set_peers({"": b.address})
            assert a.peers == {"b": c.address}  # a refused update changes nothing


async def test_aclose_ends_run_and_the_receivers_and_refuses_further_use() -> None:
    with trio.fail_after(DEADLINE_S):
        a = Transport("a", "127.0.0.1:0")
        async with trio.open_nursery() as nursery:
            await nursery.start(a.run)
            a.set_peers({"b": "127.0.0.1:1"})

            async def receiver() -> None:
                with pytest.raises(trio.EndOfChannel):
                    await a.receive_batch(10)

            nursery.start_soon(receiver)
            await trio.testing.wait_all_tasks_blocked()
            await a.aclose()  # run returns by itself, so the nursery exits
        with pytest.raises(trio.ClosedResourceError):
            a.set_peers({})
        await a.aclose()  # idempotent


async def test_cancelling_run_closes_the_transport_and_frees_its_port() -> None:
    with trio.fail_after(DEADLINE_S):
        a = Transport("a", "127.0.0.1:0")
        async with trio.open_nursery() as nursery:
            await nursery.start(a.run)
            nursery.cancel_scope.cancel()
        again = Transport("a", a.address)  # the port is free again at once
        await again.aclose()


def test_bad_node_ids_and_addresses_are_refused() -> None:
    for node_id in ["", "x" * 64, "\0a"]:
        with pytest.raises(ValueError):
            Transport(node_id, "127.0.0.1:0")
    for address in ["127.0.0.1", ":5", "host:port", "h:70000"]:
        with pytest.raises(ValueError):
            Transport("a", address)


# --- the fault layer, end to end -----------------------------------------------------------------


async def test_fault_drop_rate_one_loses_everything_until_cleared() -> None:
    with trio.fail_after(DEADLINE_S):
        async with transports("a", "b") as nodes:
            a, b = nodes["a"], nodes["b"]
            await connect(a, b)
            a.faults.set(FaultSpec(drop_rate=1.0))
            assert not any(a.send_nowait(hb("a", "b", seq=n)) for n in range(50))
            a.faults.clear()
            assert a.send_nowait(hb("a", "b", seq=50))
            send_marker(a, "b")
            assert await receive_until_markers(b, "a") == [hb("a", "b", seq=50)]
            assert a.stats().fault_dropped == 50


async def test_fault_duplicate_rate_one_delivers_every_message_twice() -> None:
    with trio.fail_after(DEADLINE_S):
        async with transports("a", "b") as nodes:
            a, b = nodes["a"], nodes["b"]
            await connect(a, b)
            a.faults.set(FaultSpec(duplicate_rate=1.0))
            for n in range(50):
                assert a.send_nowait(hb("a", "b", seq=n))
            a.faults.clear()
            send_marker(a, "b")
            got = await receive_until_markers(b, "a")
            assert Counter(m.read_seq for m in got) == {n: 2 for n in range(50)}
            assert a.stats().fault_duplicated == 50


async def test_fault_delay_holds_messages_back_and_reorders_them() -> None:
    with trio.fail_after(DEADLINE_S):
        async with transports("a", "b") as nodes:
            a, b = nodes["a"], nodes["b"]
            await connect(a, b)
            a.faults.set(FaultSpec(delay_min_s=0.05, delay_max_s=0.15, seed=3))
            sent_at = trio.current_time()
            for n in range(100):
                assert a.send_nowait(hb("a", "b", seq=n))
            a.faults.clear()
            got: list[Message] = []
            while len(got) < 100:
                batch = await b.receive_batch(100)
                assert trio.current_time() - sent_at >= 0.05
                got.extend(m for m in batch if m.read_seq != PROBE_SEQ)
            seqs = [m.read_seq for m in got]
            assert sorted(seqs) == list(range(100))
            assert seqs != sorted(seqs)  # independent delays reorder
            assert a.stats().fault_delayed == 100


async def test_a_one_way_partition_cuts_one_direction_only() -> None:
    with trio.fail_after(DEADLINE_S):
        async with transports("a", "b", "c") as nodes:
            a, b, c = nodes["a"], nodes["b"], nodes["c"]
            await connect_all(nodes)
            a.faults.partition({"b"}, inbound=False, outbound=True)  # a cannot reach b
            c.faults.partition({"b"}, inbound=True, outbound=False)  # c does not hear b
            assert not a.send_nowait(hb("a", "b", seq=1))
            assert b.send_nowait(hb("b", "a", seq=2))
            assert b.send_nowait(hb("b", "c", seq=3))
            assert c.send_nowait(hb("c", "b", seq=4))
            send_marker(b, "a")
            send_marker(c, "b")
            assert await receive_until_markers(a, "b") == [hb("b", "a", seq=2)]
            assert await receive_until_markers(b, "c") == [hb("c", "b", seq=4)]
            assert a.stats().fault_partitioned_outbound == 1
            assert c.stats().fault_partitioned_inbound == 1
            a.faults.heal()
            c.faults.heal()
            await connect(a, b)
            await connect(b, c)


# --- stress --------------------------------------------------------------------------------------


async def test_stress_many_tasks_both_directions_every_message_accounted_for() -> None:
    """Every node runs many sender tasks to random peers and one consumer; at the end each
    message ZeroMQ accepted arrived exactly once and in per-task order, and every other one was
    counted as dropped (the small send HWM makes bursts overflow). The inbound channel cannot
    overflow here: the consumer runs between any two sends of a sender task."""
    node_ids = ("a", "b", "c")
    senders_per_node, messages_per_sender = 16, 1_000
    total = senders_per_node * messages_per_sender * len(node_ids)
    rng = random.Random(7)
    config = TransportConfig(peer_send_hwm_messages=64)  # small, so that bursts overflow it
    with trio.fail_after(DEADLINE_S):
        async with transports(*node_ids, config=config) as nodes:
            await connect_all(nodes)
            base = {node_id: node.stats() for node_id, node in nodes.items()}
            accepted: Counter[tuple[str, str]] = Counter()
            arrived: dict[tuple[str, str], list[int]] = defaultdict(list)

            async def sender(node: Transport, task: int) -> None:
                peers = [p for p in node_ids if p != node.node_id]
                for n in range(messages_per_sender):
                    to, seq = rng.choice(peers), task << 32 | n
                    if rng.random() < 0.1:
                        data = rng.randbytes(rng.choice([100, 4_096, 65_536]))
                        entries = (Entry(seq + 1, 1, 0, data),)
                        msg: Message = AppendEntries(1, node.node_id, to, seq, 0, entries, 0)
                    else:
                        msg = hb(node.node_id, to, seq=seq)
                    if node.send_nowait(msg):
                        accepted[node.node_id, to] += 1
                    await trio.lowlevel.checkpoint()

            async def consumer(node: Transport) -> None:
                while True:
                    for msg in await node.receive_batch(256):
                        seq = msg.read_seq if isinstance(msg, Heartbeat) else msg.prev_index
                        if seq != PROBE_SEQ:
                            arrived[msg.sender, node.node_id].append(seq)

            def all_arrived() -> bool:
                return all(len(arrived[pair]) >= count for pair, count in accepted.items())

            async with trio.open_nursery() as consumers:
                for node in nodes.values():
                    consumers.start_soon(consumer, node)
                async with trio.open_nursery() as senders:
                    for node in nodes.values():
                        for task in range(senders_per_node):
                            senders.start_soon(sender, node, task)
                while not all_arrived():
                    await trio.sleep(PROBE_WAIT_S)  # polling under the deadline
                consumers.cancel_scope.cancel()
            stats = {node_id: node.stats() for node_id, node in nodes.items()}

    assert {pair: len(seqs) for pair, seqs in arrived.items()} == dict(accepted)
    sent = sum(stats[n].sent - base[n].sent for n in node_ids)
    unreachable = sum(stats[n].dropped_unreachable - base[n].dropped_unreachable for n in node_ids)
    assert sent == sum(accepted.values())
    assert sent + unreachable == total
    assert sent > total // 2  # connected peers take most of the load
    assert all(stats[n].dropped_inbound_full == 0 for n in node_ids)
    for seqs in arrived.values():
        assert len(seqs) == len(set(seqs))  # nothing duplicated
        per_task: dict[int, list[int]] = defaultdict(list)
        for seq in seqs:
            per_task[seq >> 32].append(seq)
        assert all(task_seqs == sorted(task_seqs) for task_seqs in per_task.values())


async def take_waiting_until(receiver: Transport, n: int) -> list[Message]:
    """Polls ``take_waiting`` (never asking for more than ``n`` in all) until it gave ``n``."""
    got: list[Message] = []
    while len(got) < n:
        got += receiver.take_waiting(n - len(got))
        await trio.sleep(0.001)
    return got


async def test_take_waiting_returns_what_arrived_in_order_whether_accepted_or_still_in_the_socket():
    # raft_zmq/node.py's ticker calls take_waiting after a stall: it must see every message that
    # has arrived, those the receive loop accepted and those still in the ZeroMQ socket.
    async with transports("a", "b") as nodes:
        a, b = nodes["a"], nodes["b"]
        await connect(a, b)
        with trio.fail_after(DEADLINE_S):
            for seq in range(3):
                assert a.send_nowait(hb("a", "b", seq))
            while b.stats().received < 3:  # the receive loop accepts them: they wait in b
                await trio.sleep(0.001)
            for seq in range(3, 6):
                assert a.send_nowait(hb("a", "b", seq))
            # The rest as they come: in b's queue or still in its socket.
            got = await take_waiting_until(b, 6)
        assert [m.read_seq for m in got] == list(range(6))
        assert b.take_waiting(1_000) == []


async def test_take_waiting_takes_at_most_max_n_and_leaves_the_rest_for_receive_batch():
    async with transports("a", "b") as nodes:
        a, b = nodes["a"], nodes["b"]
        await connect(a, b)
        with trio.fail_after(DEADLINE_S):
            for seq in range(5):
                assert a.send_nowait(hb("a", "b", seq))
            send_marker(a, "b")
            got = await take_waiting_until(b, 2)
            got += await receive_until_markers(b, "a")
        assert [m.read_seq for m in got] == list(range(5))


async def test_receive_batch_ends_once_the_transport_is_closed():
    transport = Transport("a", "127.0.0.1:0")
    async with trio.open_nursery() as nursery:
        await nursery.start(transport.run)

        async def close_soon() -> None:
            await trio.testing.wait_all_tasks_blocked()
            await transport.aclose()

        nursery.start_soon(close_soon)
        with pytest.raises(trio.EndOfChannel):
            await transport.receive_batch(10)
