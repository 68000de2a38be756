"""The follower's side of a snapshot stream (raft_zmq/snapshot_stream.py) on a real store."""

from __future__ import annotations

from raft_zmq.core.types import ClusterConfig, InstallSnapshot, Server, SnapshotChunk, SnapshotMeta
from raft_zmq.snapshot_stream import accept_chunk
from raft_zmq.snapshots import SnapshotStore

META = SnapshotMeta(40, 3, ClusterConfig((Server("a", "h:1"), Server("b", "h:2"))))
DATA = bytes(range(256)) * 40  # 10,240 bytes


def chunk(offset: int, size: int, *, term: int = 3, meta: SnapshotMeta = META) -> SnapshotChunk:
    data = DATA[offset : offset + size]
    done = offset + len(data) == len(DATA)
    return SnapshotChunk(term, "a", "b", meta, offset, len(DATA), data, done)


def test_a_whole_stream_stages_the_snapshot_and_hands_it_to_the_core(tmp_path):
    store = SnapshotStore(str(tmp_path))
    for offset in range(0, len(DATA), 4096):
        reply, install = accept_chunk(store, chunk(offset, 4096), 3, "b")
        assert reply.ok and reply.offset == min(offset + 4096, len(DATA))
    assert install == InstallSnapshot(3, "a", "b", META)
    staged = store.find(40, 3)
    assert staged is not None and staged.size_bytes == len(DATA)
    with open(staged.path, "rb") as f:
        assert f.read() == DATA


def test_a_duplicate_chunk_says_where_the_stream_is_and_changes_nothing(tmp_path):
    store = SnapshotStore(str(tmp_path))
    accept_chunk(store, chunk(0, 4096), 3, "b")
    accept_chunk(store, chunk(4096, 4096), 3, "b")
    reply, install = accept_chunk(store, chunk(0, 4096), 3, "b")
    assert (reply.ok, reply.offset, install) == (True, 8192, None)
    reply, install = accept_chunk(store, chunk(8192, 4096), 3, "b")
    assert reply.ok and install is not None


def test_an_unknown_stream_is_refused(tmp_path):
    store = SnapshotStore(str(tmp_path))
    reply, _ = accept_chunk(store, chunk(4096, 4096), 3, "b")  # never saw the start
    assert not reply.ok and reply.offset == 0 and store.incoming is None


def test_a_gap_says_where_the_stream_is_so_the_leader_goes_back(tmp_path):
    # A window of chunks is in flight (raft_zmq/driver/chunk_sender.py): one lost chunk must not
    # fail the whole stream, and the chunk after the gap is not staged.
    store = SnapshotStore(str(tmp_path))
    accept_chunk(store, chunk(0, 4096), 3, "b")
    reply, install = accept_chunk(store, chunk(8192, 2048), 3, "b")  # skips 4096..8191
    assert (reply.ok, reply.offset, install) == (True, 4096, None)
    assert store.incoming is not None and store.incoming.received_bytes == 4096
    accept_chunk(store, chunk(4096, 4096), 3, "b")
    reply, install = accept_chunk(store, chunk(8192, 2048), 3, "b")
    assert reply.ok and install is not None


def test_a_chunk_from_a_deposed_leader_is_refused(tmp_path):
    store = SnapshotStore(str(tmp_path))
    reply, install = accept_chunk(store, chunk(0, 4096, term=2), 3, "b")
    assert not reply.ok and install is None and store.incoming is None


def test_a_new_stream_replaces_an_unfinished_one(tmp_path):
    store = SnapshotStore(str(tmp_path))
    accept_chunk(store, chunk(0, 4096), 3, "b")
    newer = SnapshotMeta(60, 3, META.config)
    reply, _ = accept_chunk(store, chunk(0, 4096, meta=newer), 3, "b")
    assert reply.ok and store.incoming is not None and store.incoming.meta == newer
