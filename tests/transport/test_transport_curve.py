"""CURVE on the peer links (raft_zmq/curve.py): members holding the cluster key talk; a transport
with another key, a plaintext ZeroMQ peer forging a member's frames, and a CURVE client that knows
the cluster's public key but not its secret are all refused at the handshake, counted, and none of
their frames reaches the receiver.

"Nothing arrived" is shown as in test_transport_transport.py: a member's marker, sent after the
intruder's attempts had time to be refused, arrives with nothing from the intruder before it.
"""

from __future__ import annotations

import os
import stat

import pytest
import trio
import zmq

from raft_zmq.codec import encode
from raft_zmq.curve import ClusterKey, ClusterKeyError, CurveGate
from raft_zmq.transport import Transport, tcp_endpoint
from tests.transport.test_transport_transport import (
    DEADLINE_S,
    connect,
    hb,
    receive_until_markers,
    send_marker,
)

KEY = ClusterKey.generate()


async def wait_refusals(
    receiver: Transport, at_least: int, field: str = "refused_handshake"
) -> None:
    while getattr(receiver.stats(), field) < at_least:
        await trio.sleep(0.01)


async def test_members_with_the_cluster_key_exchange_messages() -> None:
    with trio.fail_after(DEADLINE_S):
        a = Transport("a", "127.0.0.1:0", cluster_key=KEY)
        b = Transport("b", "127.0.0.1:0", cluster_key=KEY)
        async with trio.open_nursery() as nursery:
            await nursery.start(a.run)
            await nursery.start(b.run)
            a.set_peers({"b": b.address})
            await connect(a, b)
            assert a.send_nowait(hb("a", "b", seq=7))
            send_marker(a, "b")
            assert [m.read_seq for m in await receive_until_markers(b, "a")] == [7]
            assert b.stats().refused_handshake == 0
            nursery.cancel_scope.cancel()


@pytest.mark.parametrize("intruder_key", [ClusterKey.generate(), None], ids=["wrong-key", "plain"])
async def test_a_transport_without_the_cluster_key_is_refused_and_counted(
    intruder_key: ClusterKey | None,
) -> None:
    with trio.fail_after(DEADLINE_S):
        member = Transport("a", "127.0.0.1:0", cluster_key=KEY)
        receiver = Transport("b", "127.0.0.1:0", cluster_key=KEY)
        intruder = Transport("x", "127.0.0.1:0", cluster_key=intruder_key)
        async with trio.open_nursery() as nursery:
            for t in (member, receiver, intruder):
                await nursery.start(t.run)
            intruder.set_peers({"b": receiver.address})
            member.set_peers({"b": receiver.address})
            await connect(member, receiver)
            await wait_refusals(receiver, 1)  # the intruder's DEALER tried, and was refused
            for seq in range(10):
                intruder.send_nowait(hb("x", "b", seq=seq))
            send_marker(member, "b")
            assert await receive_until_markers(receiver, "a") == []
            assert intruder.stats().sent == 0  # never connected: IMMEDIATE refused every send
            nursery.cancel_scope.cancel()


async def test_a_forged_plaintext_frame_naming_a_member_never_reaches_the_receiver() -> None:
    with trio.fail_after(DEADLINE_S):
        member = Transport("a", "127.0.0.1:0", cluster_key=KEY)
        receiver = Transport("b", "127.0.0.1:0", cluster_key=KEY)
        context = zmq.Context()
        forger = context.socket(zmq.DEALER)
        forger.setsockopt(zmq.ROUTING_ID, b"a")  # claims to be the member
        forger.setsockopt(zmq.LINGER, 0)
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(member.run)
                await nursery.start(receiver.run)
                forger.connect(tcp_endpoint(receiver.address))
                forger.send(encode(hb("a", "b", seq=666)))  # queued until a handshake that fails
                await wait_refusals(receiver, 1)
                member.set_peers({"b": receiver.address})
                await connect(member, receiver)
                send_marker(member, "b")
                assert await receive_until_markers(receiver, "a") == []
                assert receiver.stats().dropped_identity == 0  # refused before any frame
                nursery.cancel_scope.cancel()
        finally:
            forger.close(linger=0)
            context.term()


async def test_a_curve_client_knowing_only_the_public_key_is_refused_by_zap() -> None:
    with trio.fail_after(DEADLINE_S):
        receiver = Transport("b", "127.0.0.1:0", cluster_key=KEY)
        context = zmq.Context()
        intruder = context.socket(zmq.DEALER)
        own_public, own_secret = zmq.curve_keypair()
        intruder.setsockopt(zmq.CURVE_SERVERKEY, KEY.public)
        intruder.setsockopt(zmq.CURVE_PUBLICKEY, own_public)
        intruder.setsockopt(zmq.CURVE_SECRETKEY, own_secret)
        intruder.setsockopt(zmq.ROUTING_ID, b"a")
        intruder.setsockopt(zmq.LINGER, 0)
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(receiver.run)
                intruder.connect(tcp_endpoint(receiver.address))
                intruder.send(encode(hb("a", "b", seq=666)))
                await wait_refusals(receiver, 1, "refused_key")
                assert receiver.stats().received == 0
                nursery.cancel_scope.cancel()
        finally:
            intruder.close(linger=0)
            context.term()


async def test_zap_answers_only_the_cluster_key() -> None:
    context = zmq.Context()
    try:
        gate = CurveGate(context, KEY)
        raw = zmq.utils.z85.decode(KEY.public)
        other = zmq.utils.z85.decode(ClusterKey.generate().public)
        ok = gate.answer([b"1.0", b"7", b"raft", b"1.2.3.4", b"", b"CURVE", raw])
        assert ok[1:3] == [b"7", b"200"]
        assert gate.answer([b"1.0", b"8", b"raft", b"", b"", b"CURVE", other])[2] == b"400"
        assert gate.answer([b"1.0", b"9", b"raft", b"", b"", b"NULL"])[2] == b"400"
        assert gate.answer([b"junk"])[2] == b"400"
        assert (gate.counters.admitted, gate.counters.refused_key) == (1, 3)
        gate.close()
    finally:
        context.term()


def test_the_key_file_is_private_round_trips_and_is_never_overwritten(tmp_path) -> None:
    path = tmp_path / "cluster.key"
    KEY.write(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert ClusterKey.read(path) == KEY
    with pytest.raises(FileExistsError):
        ClusterKey.generate().write(path)
    assert KEY.secret.decode() not in repr(KEY)


@pytest.mark.parametrize("text", ["", "short", "x" * 40 + "y", "~" * 40])
def test_a_bad_key_is_refused_without_echoing_it(text: str) -> None:
    with pytest.raises(ClusterKeyError) as info:
        ClusterKey.from_text(text)
    assert not text or text not in str(info.value)
