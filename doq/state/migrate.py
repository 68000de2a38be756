"""Bringing state of format 1 to the current format: on open, and while loading a snapshot.

Format 2 (doq/state/layout.py) changed only the encoding of message records: a struct head in
front of a msgpack body instead of one msgpack array. Every other key and value is the same. A
format-1 record starts with a msgpack array byte (0x97 or 0x98), a format-2 one with 0 or 1, so
each record says which it is: the migration rewrites records in chunks of
``MIGRATE_RECORDS_PER_TXN_MAX`` per transaction (a state of millions of messages would not fit one
transaction's dirty pages), and a crash half-way simply resumes, since the format number is raised
only when the last chunk is written. Replicas stay identical: whichever way a replica came by a
record (applied under format 1 and migrated, applied under format 2, loaded from a snapshot of
either format), it holds the same bytes.
"""

from __future__ import annotations

import lmdb

from doq.state.batch import Dbs
from doq.state.layout import (
    DB_NAMES,
    META_FORMAT,
    STATE_FORMAT_VERSION,
    U16,
    is_v1_message,
    pack_message,
    unpack_message_v1,
)

MIGRATE_RECORDS_PER_TXN_MAX = 10_000
MESSAGES_DB_NUMBER = DB_NAMES.index("messages")
META_DB_NUMBER = DB_NAMES.index("meta")


def upgrade_value(db_number: int, key: bytes, value: bytes) -> bytes:
    """A value of a format-1 snapshot record as format 2 stores it (the state's format number
    included)."""
    if db_number == MESSAGES_DB_NUMBER and is_v1_message(value):
        return pack_message(unpack_message_v1(value))
    if db_number == META_DB_NUMBER and key == META_FORMAT:
        return U16.pack(STATE_FORMAT_VERSION)
    return value


def migrate_from_v1(env: lmdb.Environment, dbs: Dbs) -> int:
    """Rewrite every format-1 message record, then mark the state format 2; returns how many
    records were rewritten."""
    rewritten = 0
    start = b""
    while True:
        with env.begin(write=True) as txn:
            chunk, start, done = _migrate_chunk(txn, dbs, start)
            rewritten += chunk
            if done:
                txn.put(META_FORMAT, U16.pack(STATE_FORMAT_VERSION), db=dbs.meta)
                return rewritten


def _migrate_chunk(txn: lmdb.Transaction, dbs: Dbs, start: bytes) -> tuple[int, bytes, bool]:
    """Up to ``MIGRATE_RECORDS_PER_TXN_MAX`` records from key ``start`` on: (rewritten, the key to
    resume from, whether the end was reached). Read first, then written: no put under a cursor
    that is walking the same database."""
    cursor = txn.cursor(dbs.messages)
    chunk: list[tuple[bytes, bytes]] = []
    resume = None
    if cursor.set_range(start):
        for key, value in cursor.iternext():
            if len(chunk) == MIGRATE_RECORDS_PER_TXN_MAX:
                resume = key
                break
            chunk.append((key, value))
    cursor.close()
    rewritten = 0
    for key, value in chunk:
        if is_v1_message(value):
            txn.put(key, pack_message(unpack_message_v1(value)), db=dbs.messages)
            rewritten += 1
    return rewritten, resume or start, resume is None
