"""A small durable key-value state machine for the driver's tests: LMDB, one transaction per
applied batch with the applied index in it, snapshots with ``env.copy``. Commands are JSON:
``{"op": "set", "key": k, "value": v}``; the result of a set is the previous value."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from typing import Any

import lmdb

from raft_zmq.core.types import Entry, EntryKind

_APPLIED = b"applied"


def set_command(key: str, value: str) -> bytes:
    return json.dumps({"op": "set", "key": key, "value": value}).encode()


class KVStateMachine:
    def __init__(self, path: str) -> None:
        self.path = path
        os.makedirs(path, exist_ok=True)
        self._open()

    def _open(self) -> None:
        self.env = lmdb.open(self.path, max_dbs=2, map_size=1 << 30, metasync=False)
        self.kv = self.env.open_db(b"kv")
        self.meta = self.env.open_db(b"meta")

    def last_applied(self) -> tuple[int, int]:
        with self.env.begin(db=self.meta) as txn:
            raw = txn.get(_APPLIED)
        if raw is None:
            return 0, 0
        index, term = json.loads(raw)
        return index, term

    def apply(self, entries: Sequence[Entry]) -> list[Any]:
        results: list[Any] = []
        expected = self.last_applied()[0] + 1
        indexes = [e.index for e in entries]
        if indexes != list(range(expected, expected + len(entries))):
            raise AssertionError(f"apply out of order: {indexes[:5]}... after {expected - 1}")
        with self.env.begin(write=True) as txn:
            for entry in entries:
                if entry.kind != EntryKind.NORMAL:
                    results.append(None)
                    continue
                try:
                    cmd = json.loads(entry.data)
                    key = cmd["key"].encode()
                    old = txn.get(key, db=self.kv)
                    txn.put(key, cmd["value"].encode(), db=self.kv)
                    results.append(old.decode() if old is not None else None)
                except (ValueError, KeyError, TypeError, AttributeError):
                    results.append("rejected")  # a bad command is a result, never a crash
            last = entries[-1]
            txn.put(_APPLIED, json.dumps([last.index, last.term]).encode(), db=self.meta)
        return results

    def get(self, key: str) -> str | None:
        with self.env.begin(db=self.kv) as txn:
            raw = txn.get(key.encode())
        return raw.decode() if raw is not None else None

    def items(self) -> dict[str, str]:
        with self.env.begin(db=self.kv) as txn:
            return {k.decode(): v.decode() for k, v in txn.cursor()}

    def snapshot(self, path: str) -> tuple[int, int]:
        with self.env.begin() as txn:  # one read transaction: the copy and the index agree
            raw = txn.get(_APPLIED, db=self.meta)
            tmpdir = path + ".dir"
            os.makedirs(tmpdir, exist_ok=True)
            self.env.copy(tmpdir, compact=True, txn=txn)
        os.replace(os.path.join(tmpdir, "data.mdb"), path)
        shutil.rmtree(tmpdir)
        with open(path, "rb") as f:
            os.fsync(f.fileno())
        index, term = json.loads(raw) if raw is not None else (0, 0)
        return index, term

    def restore(self, path: str) -> tuple[int, int]:
        self.env.close()
        shutil.copyfile(path, os.path.join(self.path, "data.mdb"))
        lock = os.path.join(self.path, "lock.mdb")
        if os.path.exists(lock):
            os.unlink(lock)
        self._open()
        return self.last_applied()

    def close(self) -> None:
        self.env.close()
