"""The snapshot format: the whole queue state as one self-checking stream of records.

A snapshot is every key and value of every named database, read in one LMDB read transaction (a
consistent point, while applies go on), written in key order. It is logical rather than a copy of
the LMDB file, so a restore can replace the state inside an ordinary write transaction (atomic, and
the same code serves a ``RestoreState`` command applied at a log index) and the bytes are the same
on every replica that holds the same state.

Layout: ``MAGIC``, then a header (state format version, index, term), then records (database
number u8, key length u16, value length u32, key, value), then an end record (database number
``END``, both lengths 0) and the BLAKE2b-256 digest of all the bytes before it. A reader checks
the whole stream before it changes anything. A snapshot of state format 1 still loads: its
message records are rewritten in the current format as they are loaded (doq/state/migrate.py); an
older doq refuses a format-2 snapshot ("unknown snapshot format version") rather than misread it.

A node writes its snapshots in a child process (doq/state/snapshot_process.py), with this same
writer; the file's data is synced every ``SYNC_EVERY_BYTES`` as it is written, not all at the end.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Iterator
from typing import BinaryIO

import lmdb

from doq.state.batch import Dbs
from doq.state.layout import DB_NAMES, STATE_FORMAT_VERSION, STATE_FORMAT_VERSION_V1
from doq.state.migrate import upgrade_value

MAGIC = b"DOQSNAP\n"
HEADER = struct.Struct(">HQQ")  # state format version, index, term
RECORD = struct.Struct(">BHI")  # database number, key length, value length
END = 0xFF
DIGEST_BYTES = 32
LMDB_KEY_BYTES_MAX = 511
VALUE_BYTES_MAX = 1 << 31
WRITE_BUFFER_BYTES = 1 << 20
SYNC_EVERY_BYTES = 8 << 20


class SnapshotFormatError(ValueError):
    """The bytes are not a complete, intact snapshot of a format this version reads."""


def write_snapshot(txn: lmdb.Transaction, dbs: Dbs, out: BinaryIO, index: int, term: int) -> None:
    digest = hashlib.blake2b(digest_size=DIGEST_BYTES)

    def emit(data: bytes) -> None:
        digest.update(data)
        out.write(data)

    emit(MAGIC + HEADER.pack(STATE_FORMAT_VERSION, index, term))
    pending = bytearray()
    for number, name in enumerate(DB_NAMES):
        cursor = txn.cursor(getattr(dbs, name))
        for key, value in cursor:
            pending += RECORD.pack(number, len(key), len(value))
            pending += key
            pending += value
            if len(pending) >= WRITE_BUFFER_BYTES:
                emit(bytes(pending))
                pending.clear()
    pending += RECORD.pack(END, 0, 0)
    emit(bytes(pending))
    out.write(digest.digest())


class _SyncingWriter:
    """Writes through to the file and syncs its data every ``SYNC_EVERY_BYTES``: the kernel then
    never holds a whole snapshot's dirty pages to flush at once, which the node's own log fsync
    would wait behind (docs/benchmarks.md, "Snapshot stall")."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._unsynced = 0

    def write(self, data: bytes) -> None:
        self._out.write(data)
        self._unsynced += len(data)
        if self._unsynced >= SYNC_EVERY_BYTES:
            self._out.flush()
            os.fdatasync(self._out.fileno())
            self._unsynced = 0


def write_snapshot_file(txn: lmdb.Transaction, dbs: Dbs, path: str, index: int, term: int) -> None:
    """Write the snapshot and make it durable (the file and its directory entry)."""
    with open(path, "wb", buffering=WRITE_BUFFER_BYTES) as out:
        write_snapshot(txn, dbs, _SyncingWriter(out), index, term)  # type: ignore[arg-type]
        out.flush()
        os.fsync(out.fileno())
    directory = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class SnapshotReader:
    """Reads a snapshot stream: ``header()`` first, then ``records()`` to the end. The digest is
    checked when the records run out, so a consumer that must not act on a damaged stream reads it
    once through (``verify``) before reading it again to act."""

    def __init__(self, source: BinaryIO) -> None:
        self._source = source
        self._digest = hashlib.blake2b(digest_size=DIGEST_BYTES)
        self.version = STATE_FORMAT_VERSION

    def _read(self, size: int) -> bytes:
        data = self._source.read(size)
        if len(data) != size:
            raise SnapshotFormatError("the snapshot ends early")
        self._digest.update(data)
        return data

    def header(self) -> tuple[int, int]:
        if self._read(len(MAGIC)) != MAGIC:
            raise SnapshotFormatError("not a doq snapshot")
        version, index, term = HEADER.unpack(self._read(HEADER.size))
        if version not in (STATE_FORMAT_VERSION, STATE_FORMAT_VERSION_V1):
            raise SnapshotFormatError(f"unknown snapshot format version {version}")
        self.version = version
        return index, term

    def records(self) -> Iterator[tuple[int, bytes, bytes]]:
        last: tuple[int, bytes] | None = None
        while True:
            number, key_len, value_len = RECORD.unpack(self._read(RECORD.size))
            if number == END and key_len == value_len == 0:
                break
            if number >= len(DB_NAMES):
                raise SnapshotFormatError(f"unknown database number {number}")
            if not 0 < key_len <= LMDB_KEY_BYTES_MAX or value_len > VALUE_BYTES_MAX:
                raise SnapshotFormatError("a record's length is out of range")
            key = self._read(key_len)
            if last is not None and (number, key) <= last:
                raise SnapshotFormatError("records out of order")
            last = (number, key)
            yield number, key, self._read(value_len)
        expected = self._digest.digest()
        if self._source.read(DIGEST_BYTES) != expected:
            raise SnapshotFormatError("the snapshot's digest does not match its contents")
        if self._source.read(1):
            raise SnapshotFormatError("bytes after the end of the snapshot")


def verify(source: BinaryIO) -> tuple[int, int]:
    """Read the whole stream and check it; return its (index, term)."""
    reader = SnapshotReader(source)
    index_term = reader.header()
    for _ in reader.records():
        pass
    return index_term


def load_into(txn: lmdb.Transaction, dbs: Dbs, source: BinaryIO) -> tuple[int, int]:
    """Empty every database and fill it from a snapshot that ``verify`` accepted."""
    reader = SnapshotReader(source)
    index_term = reader.header()
    handles = [getattr(dbs, name) for name in DB_NAMES]
    for handle in handles:
        txn.drop(handle, delete=False)
    upgrade = reader.version == STATE_FORMAT_VERSION_V1  # doq/state/migrate.py
    for number, key, value in reader.records():
        if upgrade:
            value = upgrade_value(number, key, value)
        txn.put(key, value, db=handles[number], append=True)
    return index_term
