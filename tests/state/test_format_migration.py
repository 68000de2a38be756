"""State format 2 (message records as a struct head and a msgpack body) beside format 1 (one
msgpack array): a format-1 directory is migrated on open, a format-1 snapshot loads, and either
way the result is byte for byte the state a replica that applied the same log under format 2
holds (its snapshot is the same file), so replicas stay identical across the upgrade."""

from __future__ import annotations

import hashlib
import io
import struct
from pathlib import Path

import lmdb
import msgspec
import pytest

from doq.commands import (
    Ack,
    CreateQueue,
    Dequeue,
    Enqueue,
    Nack,
    NewMessage,
    QueueType,
    RestoreState,
)
from doq.state import migrate
from doq.state.layout import (
    DB_NAMES,
    META_FORMAT,
    U16,
    MessageRecord,
    pack_message,
    unpack_message,
)
from doq.state.machine import QueueStateMachine, StateFormatError
from doq.state.snapshot import DIGEST_BYTES, END, HEADER, MAGIC, RECORD

from .helpers import Log, open_machine, run, run_one

T = 1_750_000_000_000


def fill(sm: QueueStateMachine, log: Log) -> None:
    """Ready and in-flight messages on both queue types, metadata, a redelivery count."""
    run(
        sm,
        log,
        CreateQueue(T, "fair", QueueType.FAIR, 30),
        CreateQueue(T, "delayed", QueueType.DELAYED, 30),
    )
    messages = tuple(
        NewMessage(i, i % 3, f"body {i}", f"g{i % 4}.x", {"k": str(i)} if i % 2 else None)
        for i in range(1, 41)
    )
    run(sm, log, Enqueue(T, "fair", messages), Enqueue(T, "delayed", messages))
    run(sm, log, Dequeue(T, "fair", count=7), Dequeue(T, "delayed", count=5))
    run(sm, log, Nack(T, "fair", 1, 9), Ack(T, "delayed", 3), Dequeue(T, "fair", count=2))


def v1_record(value: bytes) -> bytes:
    """A message record as state format 1 stored it."""
    r = unpack_message(value)
    fields = (r.in_flight, r.leaf, r.priority, r.deadline_ms, r.group, r.content, r.metadata)
    return msgspec.msgpack.encode((*fields, r.deliveries))


def downgrade_directory(path: str) -> int:
    """Rewrite a closed state directory as format 1 left it; returns the records rewritten."""
    env = lmdb.open(path, max_dbs=16)
    with env.begin(write=True) as txn:
        messages = env.open_db(b"messages", txn=txn)
        meta = env.open_db(b"meta", txn=txn)
        records = list(txn.cursor(messages))
        for key, value in records:
            txn.put(key, v1_record(value), db=messages)
        txn.put(META_FORMAT, U16.pack(1), db=meta)
    env.close()
    return len(records)


def downgrade_snapshot(data: bytes) -> bytes:
    """The snapshot a format-1 state would have written for the same contents."""
    body = io.BytesIO(data[len(MAGIC) :])
    _, index, term = HEADER.unpack(body.read(HEADER.size))
    out = bytearray(MAGIC + HEADER.pack(1, index, term))
    messages, meta = DB_NAMES.index("messages"), DB_NAMES.index("meta")
    while True:
        number, key_len, value_len = RECORD.unpack(body.read(RECORD.size))
        if number == END:
            break
        key, value = body.read(key_len), body.read(value_len)
        if number == messages:
            value = v1_record(value)
        elif number == meta and key == META_FORMAT:
            value = U16.pack(1)
        out += RECORD.pack(number, len(key), len(value)) + key + value
    out += RECORD.pack(END, 0, 0)
    return bytes(out) + hashlib.blake2b(bytes(out), digest_size=DIGEST_BYTES).digest()


def snapshot_bytes(sm: QueueStateMachine, path: Path) -> bytes:
    sm.snapshot(str(path))
    return path.read_bytes()


@pytest.fixture
def reference(tmp_path: Path) -> bytes:
    """The snapshot of a replica that applied the log under format 2."""
    sm = open_machine(str(tmp_path / "reference"))
    fill(sm, Log())
    data = snapshot_bytes(sm, tmp_path / "reference.snap")
    sm.close()
    return data


def test_a_format_1_directory_is_migrated_on_open_to_the_same_bytes(tmp_path, reference):
    path = str(tmp_path / "old")
    sm = open_machine(path)
    fill(sm, Log())
    sm.close()
    assert downgrade_directory(path) == 79  # 80 enqueued, 1 acked
    sm = open_machine(path)
    assert snapshot_bytes(sm, tmp_path / "migrated.snap") == reference
    sm.close()


def test_a_migration_cut_short_resumes_on_the_next_open(tmp_path, reference, monkeypatch):
    path = str(tmp_path / "old")
    sm = open_machine(path)
    fill(sm, Log())
    sm.close()
    downgrade_directory(path)
    monkeypatch.setattr(migrate, "MIGRATE_RECORDS_PER_TXN_MAX", 16)
    chunks = []
    real_chunk = migrate._migrate_chunk

    def crash_after_two_chunks(txn, dbs, start):
        if len(chunks) == 2:
            raise KeyboardInterrupt("the process dies here")
        chunks.append(start)
        return real_chunk(txn, dbs, start)

    monkeypatch.setattr(migrate, "_migrate_chunk", crash_after_two_chunks)
    with pytest.raises(KeyboardInterrupt):
        open_machine(path)
    monkeypatch.setattr(migrate, "_migrate_chunk", real_chunk)
    env = lmdb.open(path, max_dbs=16)
    with env.begin() as txn:
        meta = env.open_db(b"meta", txn=txn, create=False)
        assert U16.unpack(txn.get(META_FORMAT, db=meta))[0] == 1  # not marked done half-way
    env.close()
    sm = open_machine(path)
    assert snapshot_bytes(sm, tmp_path / "migrated.snap") == reference
    sm.close()


def test_a_format_1_snapshot_loads_as_format_2(tmp_path, reference):
    old = tmp_path / "v1.snap"
    old.write_bytes(downgrade_snapshot(reference))
    sm = open_machine(str(tmp_path / "restored"))
    sm.restore(str(old))
    assert snapshot_bytes(sm, tmp_path / "again.snap") == reference
    sm.close()


def test_a_format_1_backup_restored_through_the_log_loads_as_format_2(tmp_path, reference):
    sm = open_machine(str(tmp_path / "live"))
    log = Log()
    fill(sm, log)
    log.index = sm.last_applied()[0]
    run_one(sm, log, RestoreState(T, downgrade_snapshot(reference)))
    restored = sm.logical_dump()
    sm.close()
    env = lmdb.open(str(tmp_path / "live"), max_dbs=16)
    with env.begin() as txn:
        meta = env.open_db(b"meta", txn=txn, create=False)
        messages = env.open_db(b"messages", txn=txn, create=False)
        assert U16.unpack(txn.get(META_FORMAT, db=meta))[0] == 2
        assert all(value[0] in (0, 1) for _, value in txn.cursor(messages))
    env.close()
    assert restored["messages"]


def test_an_unknown_format_is_refused(tmp_path):
    path = str(tmp_path / "future")
    open_machine(path).close()
    env = lmdb.open(path, max_dbs=16)
    with env.begin(write=True) as txn:
        txn.put(META_FORMAT, U16.pack(3), db=env.open_db(b"meta", txn=txn))
    env.close()
    with pytest.raises(StateFormatError, match="format 3"):
        open_machine(path)


def test_records_are_head_then_body():
    head = struct.Struct(">BQQQQ")
    data = pack_message(MessageRecord(True, 3, 7, 1234, "g", "c", {"a": "b"}, 2))
    assert head.unpack_from(data) == (1, 3, 7, 1234, 2)
    assert msgspec.msgpack.decode(data[head.size :]) == ["g", "c", {"a": "b"}]
