"""The node's durable Raft state in LMDB: the log, the hard state (term, vote, commit) and the
metadata of the snapshot that covers the compacted prefix.

Why it exists: Raft is only safe if a node forgets nothing it has told a peer (docs/raft.md,
"Safety"). ``RaftStorage.save`` writes a whole group commit (hard state plus a batch of entries)
as ONE LMDB write transaction committed with fsync, so the driver may speak as soon as it returns.

On disk (one LMDB environment per node, in its own directory):

- named db ``raft_log``: key = 8-byte big-endian index (so LMDB's order is log order and appends
  go to the end of the B-tree); value = ``term u64 | kind u8 | crc32 u32`` then the data. The crc32
  covers the index, term, kind and data, so a value stored under the wrong key is caught too.
- named db ``raft_meta``: the format version, the hard state and the snapshot metadata, each with
  its own crc32.

Entries at or below the snapshot index are garbage: compaction deletes them in bounded chunks
after the new snapshot metadata is durable, and ``open`` finishes a compaction a crash interrupted.

Integrity on open: the log must be contiguous from the snapshot index + 1 (checked in O(1) from
the entry count and the first and last keys) and the last ``TAIL_VERIFY_ENTRIES`` entries must pass
their checksum. Any damage, the LAST entry's included, raises ``StorageCorruptError`` naming the
directory, the index and the repair: LMDB commits are atomic, so a stored entry that fails its
checksum is damage, not a write that did not complete, and the entry may have been acknowledged
(counted toward a commit the durable commit index does not show yet). Dropping it could lose a
committed entry; serving it would break Raft's log matching property. The node must not start; the
repair is to rejoin the cluster as a fresh member (docs/storage.md).
Every read verifies the checksum of what it returns.

Concurrency (the driver runs ``save`` in a worker thread while the core reads in the Trio thread):

- Writes (``save``, ``install_snapshot``, ``compact``) are serialised by a lock; a second writer
  waits. They do their fsync without holding the lock readers use.
- Reads (the ``LogReader`` methods, ``initial_state``) are safe from any thread at any time. They
  see the state as of the last completed write, except that while a write that deletes entries is
  in flight they see only what both the old and the new log hold (the log is briefly shorter, never
  different). An index they report is readable until the next write that removes it.
- ``close`` waits for the running write and read, then makes every later call raise
  ``StorageClosedError``.
- Not supported: two ``RaftStorage`` objects (or processes) on the same directory.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import struct
import threading
import zlib
from collections.abc import Callable, Sequence
from typing import TypeVar

import lmdb

from raft_zmq.core.configcodec import ConfigDecodeError, decode_config, encode_config
from raft_zmq.core.log import entry_size
from raft_zmq.core.types import Entry, HardState, SnapshotMeta
from raft_zmq.statemachine import StorageFull

logger = logging.getLogger(__name__)

# LMDB reserves address space, not disk: the data file grows only as pages are used.
MAP_SIZE_DEFAULT_BYTES = 16 * 2**30
MAP_SIZE_BYTES_MAX = 2**40
TERM_CACHE_ENTRIES = 4096  # terms of the newest entries kept in memory (the hot path's lookups)
TAIL_VERIFY_ENTRIES = 64  # entries whose checksum is verified on open
DELETE_CHUNK_ENTRIES = 10_000  # most entries one compaction transaction deletes
# A commit that fails with an I/O error while the file system has no more than this free was a
# write that found no room: LMDB reports a short write (ENOSPC underneath) as EIO.
NO_ROOM_FREE_BYTES_MAX = 16 << 20
_NO_ROOM_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
FORMAT_VERSION = 1

_MAX_DBS = 2
_LOG_DB = b"raft_log"
_META_DB = b"raft_meta"
_FORMAT_KEY = b"format"
_HARD_STATE_KEY = b"hard_state"
_SNAPSHOT_KEY = b"snapshot"

_U64_MAX = 2**64 - 1
_KIND_MAX = 255
_ENTRY_HEADER = struct.Struct(">QBI")  # term, kind, crc32
_ENTRY_CRC_FIELDS = struct.Struct(">QQB")  # index, term, kind: what the crc covers besides data
_HARD_STATE = struct.Struct(">QQB")  # term, commit, has_vote; the vote's UTF-8 follows
_SNAPSHOT = struct.Struct(">QQ")  # index, term; the encoded configuration follows
_FORMAT = struct.Struct(">I")
_CRC = struct.Struct(">I")
_ENTRY_SIZE_OVERHEAD = entry_size(Entry(0, 0, 0))  # what entry_size() adds to the data

T = TypeVar("T")
# what a failed write restores: first, snapshot, last, terms_lo, terms
_View = tuple[int, SnapshotMeta, int, int, list[int]]


class StorageError(Exception):
    """A fault of the storage itself."""


class StorageCorruptError(StorageError):
    """The stored state fails an integrity check; serving it could serve a wrong log."""


class StorageClosedError(StorageError):
    """The storage was closed; no further call is possible."""


# --- encoding ----------------------------------------------------------------------------------


def _no_room(exc: lmdb.Error, path: str) -> bool:
    """Whether a failed commit was a write that found no room on the disk: LMDB says so
    (``DiskError``, ENOSPC), or reports the short write underneath as EIO while the file system
    is (nearly) full."""
    if isinstance(exc, lmdb.DiskError) or getattr(exc, "errno", None) in _NO_ROOM_ERRNOS:
        return True
    if "No space left" in str(exc):
        return True
    if "Input/output error" not in str(exc):
        return False
    try:
        return shutil.disk_usage(path).free <= NO_ROOM_FREE_BYTES_MAX
    except OSError:
        return False


def index_key(index: int) -> bytes:
    """The LMDB key of a log index: big-endian so that key order is index order."""
    return index.to_bytes(8, "big")


def encode_entry(entry: Entry) -> bytes:
    fields = _ENTRY_CRC_FIELDS.pack(entry.index, entry.term, entry.kind)
    crc = zlib.crc32(entry.data, zlib.crc32(fields))
    return _ENTRY_HEADER.pack(entry.term, entry.kind, crc) + entry.data


def decode_entry(index: int, value: bytes) -> Entry:
    """The entry stored under ``index``; ``StorageCorruptError`` if its checksum fails."""
    if len(value) < _ENTRY_HEADER.size:
        raise StorageCorruptError(f"log entry {index}: {len(value)} bytes, shorter than its header")
    term, kind, crc = _ENTRY_HEADER.unpack_from(value)
    data = value[_ENTRY_HEADER.size :]
    if zlib.crc32(data, zlib.crc32(_ENTRY_CRC_FIELDS.pack(index, term, kind))) != crc:
        raise StorageCorruptError(f"log entry {index}: checksum mismatch")
    return Entry(index, term, kind, data)


def _with_crc(body: bytes) -> bytes:
    return body + _CRC.pack(zlib.crc32(body))


def _checked_body(name: str, value: bytes) -> bytes:
    body, crc = value[: -_CRC.size], value[-_CRC.size :]
    if len(value) < _CRC.size or _CRC.unpack(crc)[0] != zlib.crc32(body):
        raise StorageCorruptError(f"{name}: checksum mismatch")
    return body


def _check_u64(what: str, *values: int) -> None:
    if not all(0 <= value <= _U64_MAX for value in values):
        raise ValueError(f"{what} out of range: {values}")


def encode_hard_state(hard_state: HardState) -> bytes:
    """``ValueError`` for a hard state that cannot be stored."""
    _check_u64("hard state term and commit", hard_state.term, hard_state.commit)
    vote = b"" if hard_state.vote is None else hard_state.vote.encode()
    has_vote = hard_state.vote is not None
    return _with_crc(_HARD_STATE.pack(hard_state.term, hard_state.commit, has_vote) + vote)


def decode_hard_state(value: bytes) -> HardState:
    body = _checked_body("hard state", value)
    try:
        term, commit, has_vote = _HARD_STATE.unpack_from(body)
        vote = body[_HARD_STATE.size :].decode() if has_vote else None
    except (struct.error, UnicodeDecodeError) as exc:
        raise StorageCorruptError(f"hard state: {exc}") from exc
    return HardState(term=term, vote=vote, commit=commit)


def encode_snapshot_meta(meta: SnapshotMeta) -> bytes:
    """``ValueError`` for snapshot metadata that cannot be stored."""
    _check_u64("snapshot index and term", meta.index, meta.term)
    return _with_crc(_SNAPSHOT.pack(meta.index, meta.term) + encode_config(meta.config))


def decode_snapshot_meta(value: bytes) -> SnapshotMeta:
    body = _checked_body("snapshot metadata", value)
    try:
        index, term = _SNAPSHOT.unpack_from(body)
        config = decode_config(body[_SNAPSHOT.size :])
    except (struct.error, ConfigDecodeError) as exc:
        raise StorageCorruptError(f"snapshot metadata: {exc}") from exc
    return SnapshotMeta(index=index, term=term, config=config)


def _check_encodable(entries: Sequence[Entry]) -> None:
    """Refuse, before anything is written, a batch that is not contiguous or cannot be encoded:
    the key order is the log order, so a gap or a repeat would corrupt the log."""
    first = entries[0].index
    for offset, entry in enumerate(entries):
        if entry.index != first + offset:
            raise ValueError(f"entries not contiguous: index {entry.index} at position {offset}")
        if not 0 <= entry.term <= _U64_MAX or not 0 <= entry.kind <= _KIND_MAX:
            raise ValueError(f"entry {entry.index}: term or kind out of range")
        if not isinstance(entry.data, bytes):
            raise ValueError(f"entry {entry.index}: data must be bytes")


# --- the storage -------------------------------------------------------------------------------


class RaftStorage:
    """The durable log (a ``LogReader``), hard state and snapshot metadata of one node.

    Open with ``RaftStorage.open(path)``. The write operations mirror ``MemoryLog`` exactly
    (``save`` = ``set_hard_state`` + ``append``), with the same errors for the same bad input;
    in addition a batch of entries must be contiguous. See the module docstring for what is
    safe concurrently.
    """

    def __init__(self, path: str, env: lmdb.Environment, *, map_size_bytes: int) -> None:
        self._path = path
        self._env = env
        self._log_db = env.open_db(_LOG_DB)
        self._meta_db = env.open_db(_META_DB)
        self._map_size_bytes = map_size_bytes
        self._write_lock = threading.Lock()  # one writer at a time
        self._state_lock = threading.Lock()  # the in-memory view, read transactions, map growth
        self._closed = False
        # The in-memory view (changed only under both locks, read under _state_lock):
        self._hard_state = HardState()
        self._snapshot = SnapshotMeta()
        self._first = 1
        self._last = 0
        # Terms of indexes _terms_lo .. _last (a suffix of the log, possibly reaching below _first,
        # where lookups never go): the hot path's term lookups never touch LMDB.
        self._terms_lo = 1
        self._terms: list[int] = []

    @classmethod
    def open(
        cls, path: str, *, sync: bool = True, map_size_bytes: int = MAP_SIZE_DEFAULT_BYTES
    ) -> RaftStorage:
        """Open (creating if needed) the node's storage in directory ``path``, verify it and load
        it. ``sync=False`` skips fsync (tests and simulations only: a crash may lose writes)."""
        if map_size_bytes <= 0:
            raise ValueError(f"map_size_bytes must be positive, got {map_size_bytes}")
        os.makedirs(path, exist_ok=True)
        env = lmdb.open(
            path,
            subdir=True,
            map_size=map_size_bytes,
            max_dbs=_MAX_DBS,
            sync=sync,
            metasync=sync,
            lock=True,
            readahead=False,  # the log is read near its end; readahead would only evict pages
        )
        try:
            storage = cls(path, env, map_size_bytes=env.info()["map_size"])
            storage._load()
        except BaseException:
            env.close()
            raise
        return storage

    @property
    def path(self) -> str:
        return self._path

    def map_size_bytes(self) -> int:
        """The current LMDB map size (it grows when the map fills up)."""
        with self._state_lock:
            self._check_open()
            return self._map_size_bytes

    def initial_state(self) -> tuple[HardState, SnapshotMeta]:
        """The durable hard state and snapshot metadata (as loaded, or as last written)."""
        with self._state_lock:
            self._check_open()
            return self._hard_state, self._snapshot

    def close(self) -> None:
        """Close the environment; idempotent. Every other method raises afterwards."""
        with self._write_lock, self._state_lock:
            if not self._closed:
                self._closed = True
                self._env.close()

    # LogReader ----------------------------------------------------------------------------------
    def first_index(self) -> int:
        with self._state_lock:
            self._check_open()
            return self._first

    def last_index(self) -> int:
        with self._state_lock:
            self._check_open()
            return self._last

    def term(self, index: int) -> int:
        with self._state_lock:
            self._check_open()
            if index == self._first - 1:
                return self._snapshot.term
            if index < self._first or index > self._last:
                raise IndexError(index)
            if index >= self._terms_lo:
                return self._terms[index - self._terms_lo]
            with self._env.begin(db=self._log_db) as txn:
                value = txn.get(index_key(index))
            if value is None:
                raise StorageCorruptError(f"log entry {index} missing inside {self._bounds()}")
            return decode_entry(index, value).term

    def entries(self, lo: int, hi: int, max_bytes: int) -> list[Entry]:
        with self._state_lock:
            self._check_open()
            if lo < self._first or hi > self._last + 1:
                raise IndexError((lo, hi))
            if lo >= hi:
                return []
            with self._env.begin(db=self._log_db) as txn, txn.cursor() as cursor:
                return self._read_range(cursor, lo, hi, max_bytes)

    def _read_range(self, cursor: lmdb.Cursor, lo: int, hi: int, max_bytes: int) -> list[Entry]:
        out: list[Entry] = []
        size = 0
        expected = lo
        if cursor.set_key(index_key(lo)):
            for key, value in cursor.iternext():
                index = int.from_bytes(key, "big")
                if index != expected:
                    break
                # entry_size() of the stored entry, known before decoding it
                size += len(value) - _ENTRY_HEADER.size + _ENTRY_SIZE_OVERHEAD
                if out and size > max_bytes:
                    return out
                out.append(decode_entry(index, value))
                expected += 1
                if expected == hi:
                    return out
        raise StorageCorruptError(f"log entry {expected} missing inside {self._bounds()}")

    def _bounds(self) -> str:
        return f"the log {self._first}..{self._last} in {self._path}"

    # writes -------------------------------------------------------------------------------------
    def save(self, hard_state: HardState | None, entries: Sequence[Entry]) -> None:
        """Make ``hard_state`` (if given) and ``entries`` durable in ONE transaction committed
        with fsync. Entries starting at or below the last index first delete the conflicting
        suffix from there (``MemoryLog.append``); ``ValueError`` (and nothing written) if the
        first index is outside ``first_index() .. last_index() + 1`` or the batch has a gap."""
        with self._write_lock:
            self._check_open()
            if hard_state is None and not entries:
                return
            if entries:
                first = entries[0].index
                if first < self._first or first > self._last + 1:
                    raise ValueError(f"append at {first} outside {self._first}..{self._last + 1}")
                _check_encodable(entries)
            encoded = [(index_key(e.index), encode_entry(e)) for e in entries]
            hard_state_value = None if hard_state is None else encode_hard_state(hard_state)
            old_last = self._last
            # readers must not see a suffix that is being replaced
            truncating = bool(entries) and entries[0].index <= old_last
            self._write_behind_view(
                lambda txn: self._save_txn(txn, hard_state_value, encoded, old_last),
                last=entries[0].index - 1 if truncating else None,
            )
            self._publish(
                last=entries[-1].index if entries else None,
                new_terms=[e.term for e in entries],
                hard_state=hard_state,
            )

    def _save_txn(
        self,
        txn: lmdb.Transaction,
        hard_state_value: bytes | None,
        encoded: list[tuple[bytes, bytes]],
        old_last: int,
    ) -> None:
        if encoded:
            first = int.from_bytes(encoded[0][0], "big")
            with txn.cursor(db=self._log_db) as cursor:
                if first <= old_last:
                    self._delete_from(cursor, first, old_last - first + 1)
                consumed, added = cursor.putmulti(encoded, append=True)
                assert consumed == added == len(encoded), (consumed, added, len(encoded))
        if hard_state_value is not None:
            txn.put(_HARD_STATE_KEY, hard_state_value, db=self._meta_db)

    def _delete_from(self, cursor: lmdb.Cursor, first: int, count: int) -> None:
        found = cursor.set_key(index_key(first))
        assert found, f"entry {first} missing before truncation"
        for _ in range(count):
            deleted = cursor.delete()
            assert deleted
        assert not cursor.key(), "entries beyond the last index"

    def install_snapshot(self, meta: SnapshotMeta) -> None:
        """Replace the log with a snapshot received from the leader: the entries after it are
        kept only if the log holds the snapshot's last entry (same index and term). Durable when
        it returns."""
        with self._write_lock:
            self._check_open()
            value = encode_snapshot_meta(meta)
            keep = self._first <= meta.index <= self._last and self.term(meta.index) == meta.term
            if keep:
                # the entries after meta.index, and meta.index's term, are the same before and after
                self._write_behind_view(
                    lambda txn: self._put_snapshot_meta(txn, value),
                    first=meta.index + 1,
                    snapshot=meta,
                )
            else:
                # before and after share nothing but "empty above the old snapshot"
                self._write_behind_view(
                    lambda txn: self._replace_log_txn(txn, value), last=self._first - 1
                )
                self._publish(first=meta.index + 1, last=meta.index, snapshot=meta)
        if keep:
            self._delete_garbage()

    def _replace_log_txn(self, txn: lmdb.Transaction, snapshot_value: bytes) -> None:
        txn.drop(self._log_db, delete=False)
        self._put_snapshot_meta(txn, snapshot_value)

    def _put_snapshot_meta(self, txn: lmdb.Transaction, snapshot_value: bytes) -> None:
        txn.put(_SNAPSHOT_KEY, snapshot_value, db=self._meta_db)

    def compact(self, meta: SnapshotMeta, *, delete_now: bool = True) -> None:
        """A local snapshot now covers the prefix up to ``meta.index``: record it durably, then
        delete those entries in chunks of at most ``DELETE_CHUNK_ENTRIES`` per transaction (other
        writes may run between chunks). A no-op if ``meta.index`` is not past the current
        snapshot; ``ValueError`` beyond the last index.

        With ``delete_now=False`` only the first step runs (one small synced transaction): the
        log's bounds move at once, and the entries below them, invisible to readers already, are
        left for ``delete_garbage`` (which the driver runs in a worker thread, so that moving the
        bounds happens between the core's rounds while the bulk deletion does not stall them)."""
        with self._write_lock:
            self._check_open()
            if meta.index <= self._snapshot.index:
                return
            if meta.index > self._last:
                raise ValueError("cannot compact beyond the last index")
            value = encode_snapshot_meta(meta)
            self._write_behind_view(
                lambda txn: self._put_snapshot_meta(txn, value), first=meta.index + 1, snapshot=meta
            )
        if delete_now:
            self._delete_garbage()

    def delete_garbage(self) -> None:
        """Delete the entries a compaction left below the log's first index (see ``compact``)."""
        self._delete_garbage()

    def _delete_garbage(self) -> None:
        """Delete entries at or below the snapshot index (left by compaction or by a crash in the
        middle of one), one bounded transaction at a time."""
        while True:
            with self._write_lock:
                if self._closed:
                    return  # the snapshot metadata is durable; the next open finishes the job
                deleted = self._write(self._delete_garbage_chunk)
                if deleted < DELETE_CHUNK_ENTRIES:
                    return

    def _delete_garbage_chunk(self, txn: lmdb.Transaction) -> int:
        upto = self._snapshot.index
        deleted = 0
        with txn.cursor(db=self._log_db) as cursor:
            if not cursor.first():
                return 0
            while deleted < DELETE_CHUNK_ENTRIES:
                key = cursor.key()
                if not key or int.from_bytes(key, "big") > upto:
                    break
                cursor.delete()
                deleted += 1
        return deleted

    # the view readers see -----------------------------------------------------------------------
    def _write_behind_view(
        self,
        body: Callable[[lmdb.Transaction], object],
        *,
        first: int | None = None,
        last: int | None = None,
        snapshot: SnapshotMeta | None = None,
    ) -> None:
        """Run a write that removes entries. Meanwhile readers see only what the log holds both
        before and after it (given as the view to publish first), so whichever state their LMDB
        read transaction sees, they read the same bytes. A failed write restores the old view."""
        old_view = self._capture_view()
        self._publish(first=first, last=last, snapshot=snapshot)
        try:
            self._write(body)
        except BaseException:
            self._restore_view(old_view)
            raise

    def _capture_view(self) -> _View:
        return (self._first, self._snapshot, self._last, self._terms_lo, self._terms)

    def _restore_view(self, view: _View) -> None:
        with self._state_lock:
            self._first, self._snapshot, self._last, self._terms_lo, self._terms = view

    def _publish(
        self,
        *,
        first: int | None = None,
        last: int | None = None,
        snapshot: SnapshotMeta | None = None,
        new_terms: Sequence[int] = (),
        hard_state: HardState | None = None,
    ) -> None:
        """Change the in-memory view at once for readers. ``last`` truncates the term cache;
        ``new_terms`` are those of entries ``last - len(new_terms) + 1 .. last``."""
        with self._state_lock:
            if first is not None:
                self._first = first
            if snapshot is not None:
                self._snapshot = snapshot
            if hard_state is not None:
                self._hard_state = hard_state
            if last is not None:
                self._set_cached_terms(last, new_terms)
                self._last = last
            assert self._first <= self._last + 1, (self._first, self._last)

    def _set_cached_terms(self, last: int, new_terms: Sequence[int]) -> None:
        keep_to = last - len(new_terms)  # the cache keeps its terms up to this index
        cached_last = self._terms_lo + len(self._terms) - 1
        if keep_to == cached_last:
            self._terms.extend(new_terms)  # the common case: an append
        elif self._terms_lo <= keep_to < cached_last:
            # a truncation: a new list, so that a captured view keeps the old one intact
            self._terms = self._terms[: keep_to - self._terms_lo + 1]
            self._terms.extend(new_terms)
        else:
            self._terms = list(new_terms)
            self._terms_lo = last - len(new_terms) + 1
        if len(self._terms) > 2 * TERM_CACHE_ENTRIES:  # trimmed in bulk: amortised O(1)
            excess = len(self._terms) - TERM_CACHE_ENTRIES
            self._terms = self._terms[excess:]
            self._terms_lo += excess
        assert self._terms_lo + len(self._terms) == last + 1, (self._terms_lo, last)

    # LMDB plumbing ------------------------------------------------------------------------------
    def _write(self, body: Callable[[lmdb.Transaction], T]) -> T:
        """Run ``body`` in one write transaction and commit it (fsync with sync=True). A full map
        is grown and the transaction retried from scratch, so a node never dies of it. A disk
        without room raises ``StorageFull`` with the transaction aborted (nothing written), which
        the driver waits out and retries (docs/operations.md, "Disk full")."""
        while True:
            try:
                with self._env.begin(write=True) as txn:
                    result = body(txn)
                return result
            except lmdb.MapFullError:
                self._grow_map()
            except lmdb.Error as exc:
                if _no_room(exc, self._path):
                    raise StorageFull(f"no room on disk for the Raft log at {self._path}") from exc
                raise

    def _grow_map(self) -> None:
        # set_mapsize needs no transaction open in this process: the write transaction has been
        # aborted and readers are held off by the state lock.
        with self._state_lock:
            if self._map_size_bytes >= MAP_SIZE_BYTES_MAX:
                raise StorageError(f"LMDB map of {self._path} is full at {self._map_size_bytes} B")
            new_size = min(self._map_size_bytes * 2, MAP_SIZE_BYTES_MAX)
            self._env.set_mapsize(new_size)
            old_size = self._map_size_bytes
            logger.info("LMDB map of %s grown from %d to %d B", self._path, old_size, new_size)
            self._map_size_bytes = new_size

    def _check_open(self) -> None:
        if self._closed:
            raise StorageClosedError(f"Raft storage at {self._path} is closed")

    # loading and verification -------------------------------------------------------------------
    def _load(self) -> None:
        self._write(self._load_meta_txn)
        self._delete_garbage()
        first, last, count = self._scan_bounds()
        if count and first != self._snapshot.index + 1:
            raise StorageCorruptError(
                f"{self._path}: the log starts at {first} but the snapshot covers only up to "
                f"{self._snapshot.index}: entries {self._snapshot.index + 1}..{first - 1} missing"
            )
        if count != last - first + 1:
            raise StorageCorruptError(f"{self._path}: {self._describe_gap(first)}")
        if count == 0:
            first, last = self._snapshot.index + 1, self._snapshot.index
        tail = self._verify_tail(first, last)
        self._first = first
        self._last = last
        self._terms_lo = last - len(tail) + 1
        self._terms = [e.term for e in tail]

    def _load_meta_txn(self, txn: lmdb.Transaction) -> None:
        stored_format = txn.get(_FORMAT_KEY, db=self._meta_db)
        if stored_format is None:
            txn.put(_FORMAT_KEY, _FORMAT.pack(FORMAT_VERSION), db=self._meta_db)
        elif stored_format != _FORMAT.pack(FORMAT_VERSION):
            raise StorageCorruptError(
                f"{self._path}: storage format {stored_format!r}; this version reads "
                f"{FORMAT_VERSION}"
            )
        hard_state = txn.get(_HARD_STATE_KEY, db=self._meta_db)
        snapshot = txn.get(_SNAPSHOT_KEY, db=self._meta_db)
        self._hard_state = HardState() if hard_state is None else decode_hard_state(hard_state)
        self._snapshot = SnapshotMeta() if snapshot is None else decode_snapshot_meta(snapshot)

    def _scan_bounds(self) -> tuple[int, int, int]:
        """First index, last index and entry count of the stored log (0, -1, 0 when empty)."""
        with self._env.begin(db=self._log_db) as txn, txn.cursor() as cursor:
            count = txn.stat(self._log_db)["entries"]
            if not cursor.first():
                return 0, -1, 0
            first = int.from_bytes(cursor.key(), "big")
            cursor.last()
            return first, int.from_bytes(cursor.key(), "big"), count

    def _describe_gap(self, first: int) -> str:
        with self._env.begin(db=self._log_db) as txn, txn.cursor() as cursor:
            expected = first
            for key in cursor.iternext(keys=True, values=False):
                index = int.from_bytes(key, "big")
                if index != expected:
                    return f"log gap: entries {expected}..{index - 1} are missing"
                expected += 1
        return "log entry count disagrees with its keys"

    def _verify_tail(self, first: int, last: int) -> list[Entry]:
        """The last TAIL_VERIFY_ENTRIES entries, verified, oldest first; ``StorageCorruptError``
        for any that fails its checksum, the last one included (never dropped: see the module
        docstring)."""
        tail: list[Entry] = []
        with self._env.begin(db=self._log_db) as txn:
            for index in range(max(first, last - TAIL_VERIFY_ENTRIES + 1), last + 1):
                value = txn.get(index_key(index))
                assert value is not None  # the log was just found contiguous
                try:
                    tail.append(decode_entry(index, value))
                except StorageCorruptError as exc:
                    message = self._corrupt_entry_message(exc, index, last)
                    raise StorageCorruptError(message) from exc
        return tail

    def _corrupt_entry_message(self, exc: StorageCorruptError, index: int, last: int) -> str:
        where = "the last entry" if index == last else f"before the last entry {last}"
        return (
            f"{os.path.join(self._path, 'data.mdb')}: {exc} ({where}; durable commit index "
            f"{self._hard_state.commit}). It may have been acknowledged, so it is neither dropped "
            f"nor served. Repair: remove this server from the cluster's configuration through the "
            f"leader, move this directory aside (keep it), and start the node empty so that it "
            f"rejoins as a non-voter and catches up (docs/storage.md)."
        )
