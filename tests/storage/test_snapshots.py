"""SnapshotStore: a finalized snapshot is durable and visible, survives a reopen, streams back
byte for byte by offset, and is pruned oldest first; whatever a crash leaves half-written is
removed on open; an incoming snapshot is staged chunk by chunk and a gap is refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from raft_zmq.core.types import ClusterConfig, Server, SnapshotMeta
from raft_zmq.snapshots import (
    SNAPSHOT_READ_BYTES_MAX,
    SnapshotCorruptError,
    SnapshotStagingError,
    SnapshotStore,
)

CONFIG = ClusterConfig((Server("node-0", "127.0.0.1:7000"), Server("node-1", "127.0.0.1:7001")))


def meta(index: int, term: int = 2) -> SnapshotMeta:
    return SnapshotMeta(index=index, term=term, config=CONFIG)


def payload(size: int, seed: int = 1) -> bytes:
    return bytes((i * 31 + seed) % 251 for i in range(size))


def write_local(store: SnapshotStore, index: int, data: bytes) -> None:
    tmp_path = store.new_temp_path()
    with open(tmp_path, "wb") as f:
        f.write(data)
    store.finalize(tmp_path, meta(index))


def test_finalized_snapshot_is_latest_and_survives_reopen(tmp_path: Path) -> None:
    store = SnapshotStore(str(tmp_path))
    assert store.latest() is None
    write_local(store, 10, payload(1000))
    write_local(store, 30, payload(3000))
    write_local(store, 20, payload(2000))
    latest = store.latest()
    assert latest is not None and latest.meta == meta(30) and latest.size_bytes == 3000
    assert Path(latest.path).read_bytes() == payload(3000)
    assert [s.meta.index for s in store.snapshots()] == [10, 20, 30]

    reopened = SnapshotStore(str(tmp_path))
    assert reopened.snapshots() == store.snapshots()
    assert reopened.find(20, 2) == store.find(20, 2) != None  # noqa: E711
    assert reopened.find(20, 3) is None
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".part")]


def test_prune_keeps_the_newest(tmp_path: Path) -> None:
    store = SnapshotStore(str(tmp_path))
    for index in (5, 15, 25, 35):
        write_local(store, index, payload(100, seed=index))
    removed = store.prune(keep=2)
    assert [s.meta.index for s in removed] == [5, 15]
    assert [s.meta.index for s in store.snapshots()] == [25, 35]
    assert not any(os.path.exists(s.path) for s in removed)
    assert [s.meta.index for s in SnapshotStore(str(tmp_path)).snapshots()] == [25, 35]
    with pytest.raises(ValueError):
        store.prune(keep=0)


def test_streaming_by_offset_reproduces_the_file(tmp_path: Path) -> None:
    store = SnapshotStore(str(tmp_path))
    data = payload(10_000)
    write_local(store, 7, data)
    snapshot = store.latest()
    assert snapshot is not None
    chunks = []
    with store.open(snapshot) as reader:
        offset = 0
        while chunk := reader.read_at(offset, 3000):
            chunks.append(chunk)
            offset += len(chunk)
        assert reader.read_at(2000, 10) == data[2000:2010]
        with pytest.raises(ValueError):
            reader.read_at(10_001, 10)
        with pytest.raises(ValueError):
            reader.read_at(0, SNAPSHOT_READ_BYTES_MAX + 1)
    assert [len(c) for c in chunks] == [3000, 3000, 3000, 1000]
    assert b"".join(chunks) == data


def test_pruned_snapshot_stays_readable_through_an_open_reader(tmp_path: Path) -> None:
    store = SnapshotStore(str(tmp_path))
    write_local(store, 1, payload(500))
    old = store.latest()
    assert old is not None
    with store.open(old) as reader:
        write_local(store, 2, payload(10))
        store.prune(keep=1)
        assert reader.read_at(0, 500) == payload(500)


def test_files_left_by_a_crash_are_removed_on_open(tmp_path: Path) -> None:
    store = SnapshotStore(str(tmp_path))
    write_local(store, 10, payload(100))
    write_local(store, 20, payload(200))
    complete = store.snapshots()
    leftovers = {
        "tmp-0123abcd.part": b"half a local snapshot",
        "incoming-40-3.part": b"half a received snapshot",
        "tmp-snap-00000000000000000050-00000000000000000003.meta.part": b"half a sidecar",
        # renamed into place, but the crash came before its sidecar
        "snap-00000000000000000060-00000000000000000003.snap": payload(60),
    }
    for name, data in leftovers.items():
        (tmp_path / name).write_bytes(data)
    # a complete-looking snapshot whose data file was cut short, and one whose sidecar is torn
    write_local(store, 70, payload(700))
    write_local(store, 80, payload(800))
    os.truncate(tmp_path / "snap-00000000000000000070-00000000000000000002.snap", 100)
    sidecar = tmp_path / "snap-00000000000000000080-00000000000000000002.meta"
    sidecar.write_bytes(sidecar.read_bytes()[:-3])
    (tmp_path / "operator-notes.txt").write_text("not the store's: left alone")

    reopened = SnapshotStore(str(tmp_path))
    assert reopened.snapshots() == complete
    assert sorted(os.listdir(tmp_path)) == sorted(
        [os.path.basename(s.path) for s in complete]
        + [os.path.basename(s.path)[: -len(".snap")] + ".meta" for s in complete]
        + ["operator-notes.txt"]
    )


def test_verify_detects_a_damaged_snapshot_file(tmp_path: Path) -> None:
    store = SnapshotStore(str(tmp_path))
    write_local(store, 3, payload(4096))
    snapshot = store.latest()
    assert snapshot is not None
    store.verify(snapshot)
    with open(snapshot.path, "r+b") as f:
        f.seek(100)
        f.write(b"\xff")
    with pytest.raises(SnapshotCorruptError, match="crc32"):
        store.verify(snapshot)


def test_finalize_refuses_a_path_outside_the_store(tmp_path: Path) -> None:
    store = SnapshotStore(str(tmp_path / "snapshots"))
    outside = tmp_path / "elsewhere.part"
    outside.write_bytes(b"data")
    with pytest.raises(ValueError, match="not a temporary path"):
        store.finalize(str(outside), meta(1))
    assert store.latest() is None and outside.exists()


def test_discarded_temp_file_is_removed(tmp_path: Path) -> None:
    store = SnapshotStore(str(tmp_path))
    tmp = store.new_temp_path()
    Path(tmp).write_bytes(b"abandoned")
    store.discard_temp(tmp)
    store.discard_temp(tmp)  # already gone: fine
    assert os.listdir(tmp_path) == []


def test_incoming_chunks_are_staged_and_finalized(tmp_path: Path) -> None:
    store = SnapshotStore(str(tmp_path))
    data = payload(2500)
    incoming = store.begin_incoming(meta(90, 4), total_bytes=len(data))
    assert store.incoming is incoming
    for offset in range(0, len(data), 1000):
        assert incoming.write_chunk(offset, data[offset : offset + 1000]) == min(
            offset + 1000, 2500
        )
    snapshot = incoming.finalize()
    assert snapshot == store.latest()
    assert snapshot.meta == meta(90, 4) and Path(snapshot.path).read_bytes() == data
    store.verify(snapshot)  # the crc computed while staging matches the file
    assert store.incoming is None
    with pytest.raises(SnapshotStagingError, match="has ended"):
        incoming.write_chunk(0, b"x")


def test_incoming_chunk_after_a_gap_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    store = SnapshotStore(str(tmp_path))
    data = payload(3000)
    incoming = store.begin_incoming(meta(5), total_bytes=len(data))
    incoming.write_chunk(0, data[:1000])
    with pytest.raises(SnapshotStagingError, match="gap: 1000 bytes held, chunk starts at 2000"):
        incoming.write_chunk(2000, data[2000:])
    assert incoming.received_bytes == 1000
    with pytest.raises(SnapshotStagingError, match="incomplete"):
        incoming.finalize()
    incoming.write_chunk(1000, data[1000:2000])
    incoming.write_chunk(2000, data[2000:])
    assert Path(incoming.finalize().path).read_bytes() == data


def test_incoming_duplicate_and_overlapping_chunks_are_harmless(tmp_path: Path) -> None:
    store = SnapshotStore(str(tmp_path))
    data = payload(300)
    incoming = store.begin_incoming(meta(5), total_bytes=len(data))
    incoming.write_chunk(0, data[:100])
    assert incoming.write_chunk(0, data[:100]) == 100  # a duplicate
    assert incoming.write_chunk(50, data[50:200]) == 200  # overlaps what is held
    with pytest.raises(SnapshotStagingError, match="outside the snapshot's 300 bytes"):
        incoming.write_chunk(200, data[200:] + b"extra")
    incoming.write_chunk(200, data[200:])
    assert Path(incoming.finalize().path).read_bytes() == data


def test_incoming_abort_and_restart_leave_no_staging_file(tmp_path: Path) -> None:
    store = SnapshotStore(str(tmp_path))
    first = store.begin_incoming(meta(5), total_bytes=100)
    first.write_chunk(0, payload(50))
    second = store.begin_incoming(meta(9), total_bytes=10)  # a newer snapshot replaces it
    assert not os.path.exists(first.path) and not first.active
    second.abort()
    second.abort()  # idempotent
    assert os.listdir(tmp_path) == [] and store.incoming is None
    empty = store.begin_incoming(meta(11), total_bytes=0)
    assert empty.finalize().size_bytes == 0
