"""The leader's side of a snapshot stream (raft_zmq/driver/chunk_sender.py), against the
follower's real rules (raft_zmq/snapshot_stream.accept_chunk) on a real store."""

from __future__ import annotations

from raft_zmq.core.types import (
    ClusterConfig,
    InstallSnapshot,
    Server,
    SnapshotChunkReply,
    SnapshotMeta,
)
from raft_zmq.driver.chunk_sender import ChunkSender, StreamOptions
from raft_zmq.snapshot_stream import accept_chunk
from raft_zmq.snapshots import SnapshotStore

META = SnapshotMeta(40, 3, ClusterConfig((Server("a", "h:1"), Server("b", "h:2"))))
MSG = InstallSnapshot(3, "a", "b", META)
DATA = bytes(range(256)) * 40  # 10,240 bytes: 10 chunks of 1,024
OPTIONS = StreamOptions(chunk_bytes=1024, chunks_in_flight_max=4, timeout_ms=100)


def reply(offset: int, ok: bool = True) -> SnapshotChunkReply:
    return SnapshotChunkReply(3, "b", "a", META.index, offset, ok)


def test_a_window_of_chunks_is_in_flight_and_acknowledgements_open_it():
    sender = ChunkSender(MSG, len(DATA), OPTIONS, now_ms=0)
    assert sender.take_sends() == [(0, 1024), (1024, 1024), (2048, 1024), (3072, 1024)]
    assert sender.take_sends() == []  # the window is full
    assert sender.on_reply(reply(2048), now_ms=1)
    assert sender.take_sends() == [(4096, 1024), (5120, 1024)]


def test_a_whole_stream_with_a_lost_chunk_goes_back_once_and_completes(tmp_path):
    store = SnapshotStore(str(tmp_path))
    sender = ChunkSender(MSG, len(DATA), OPTIONS, now_ms=0)
    lost_once = {2048}
    installs = []
    rewinds = 0
    for _ in range(100):
        sends = sender.take_sends()
        replies = []
        for offset, length in sends:
            if offset in lost_once:
                lost_once.discard(offset)
                continue
            answer, install = accept_chunk(
                store, sender.chunk(offset, DATA[offset : offset + length]), 3, "b"
            )
            replies.append(answer)
            installs.append(install)
        for answer in replies:
            before = sender.next_offset
            sender.on_reply(answer, now_ms=1)
            rewinds += sender.next_offset < before
        if sender.finished:
            break
    assert sender.result is True and rewinds == 1
    assert [i for i in installs if i is not None] == [MSG]
    staged = store.find(META.index, META.term)
    assert staged is not None
    with open(staged.path, "rb") as f:
        assert f.read() == DATA


def test_a_refusal_fails_the_stream():
    sender = ChunkSender(MSG, len(DATA), OPTIONS, now_ms=0)
    sender.take_sends()
    assert sender.on_reply(reply(0, ok=False), now_ms=1) and sender.result is False


def test_a_stream_without_progress_times_out_and_progress_postpones_it():
    sender = ChunkSender(MSG, len(DATA), OPTIONS, now_ms=0)
    sender.take_sends()
    assert not sender.expire(now_ms=99)
    sender.on_reply(reply(1024), now_ms=90)
    assert not sender.expire(now_ms=189)
    assert sender.expire(now_ms=190) and sender.result is False


def test_an_empty_snapshot_is_one_empty_chunk():
    sender = ChunkSender(MSG, 0, OPTIONS, now_ms=0)
    assert sender.take_sends() == [(0, 0)]
    assert sender.chunk(0, b"").done
    assert sender.on_reply(reply(0), now_ms=1) and sender.result is True


def test_replies_of_another_snapshot_or_after_the_end_change_nothing():
    sender = ChunkSender(MSG, len(DATA), OPTIONS, now_ms=0)
    sender.take_sends()
    other = SnapshotChunkReply(3, "b", "a", META.index + 1, 4096, True)
    assert not sender.on_reply(other, now_ms=1) and sender.acked_bytes == 0
    sender.cancel()
    assert not sender.on_reply(reply(4096), now_ms=1) and sender.result is False
