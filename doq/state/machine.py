"""The queue state machine: the committed log applied to LMDB, identically on every replica.

``QueueStateMachine`` implements ``raft_zmq.statemachine.StateMachine``. A batch of committed
entries is applied in one LMDB write transaction that also records the last applied (index, term),
so after a crash the state and the applied index agree and the driver replays exactly the entries
after it: none twice, none skipped.

Durability: the Raft log is the state's durability. A node opens its state with
``apply_sync=False``: applies are not synced at all, so the answer to a write waits for one fsync
(the log's) and not two. A crash of the process loses nothing committed (the kernel holds the
writes); after a crash of the machine the state is discarded at the next open and rebuilt from the
snapshot and the log (doq/state/unsynced.py says when, and why that is safe). With the default
``apply_sync=True`` the environment syncs data on every commit but not the meta page
(``metasync=False``): one fdatasync per apply batch instead of two, and a crash loses at most the
last batch, applied again from the log. Pass ``metasync=True`` when the state must be durable on its
own (no log to replay from).

Room: a full LMDB map grows and the batch is applied again from scratch; a map at its maximum or
a full disk raises ``StorageFull`` with nothing applied, so the driver retries it later rather than
crash (doq/state/room.py, docs/operations.md "Disk full").
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

import lmdb

from doq.commands import AssignNodeNumber, CommandDecodeError, RestoreState, decode_command
from doq.state import batch_ops, due, handlers, identity, reads, snapshot_process, unsynced
from doq.state.batch import Dbs, WriteBatch, read_applied, read_meta
from doq.state.layout import (
    DB_NAMES,
    LMDB_NAMED_DBS_MAX,
    LMDB_READERS_MAX,
    META_FORMAT,
    STATE_FORMAT_VERSION,
    STATE_FORMAT_VERSION_V1,
    U16,
)
from doq.state.migrate import migrate_from_v1
from doq.state.results import (
    QueueInfo,
    RejectCode,
    Rejected,
    Result,
    StateRestored,
    StoredMessage,
)
from doq.state.room import (
    STATE_MAP_SIZE_BYTES_MAX,
    STATE_MAP_SIZE_DEFAULT_BYTES,
    Room,
    disk_free_bytes,
)
from doq.state.snapshot import SnapshotFormatError, load_into, verify, write_snapshot_file
from raft_zmq.core.types import Entry, EntryKind

logger = logging.getLogger(__name__)


class ApplyOrderError(ValueError):
    """The driver handed entries that do not follow the last applied one."""


class StateFormatError(RuntimeError):
    """The environment holds state of a format this version does not know."""


class StateUntrustedError(RuntimeError):
    """The state was written without sync and the machine restarted since: it may be corrupt.
    Only a node (``apply_sync=False``) discards and rebuilds it; other openers refuse it."""


class QueueStateMachine:
    """``redelivery_clock`` is a planted-bug hook for the simulator and nothing else: when set, it
    (not the command's ``ts_ms``) decides which in-flight messages have expired, which is exactly
    the bug of deciding redelivery by a node's own clock. Production passes None. ``plants``
    likewise: ``identity.PLANT_NODE_NUMBER_BY_HASH`` (simulations/plants.py); production passes
    none."""

    def __init__(
        self,
        path: str,
        *,
        map_size_bytes: int = STATE_MAP_SIZE_DEFAULT_BYTES,
        map_size_max_bytes: int = STATE_MAP_SIZE_BYTES_MAX,
        sync: bool = True,
        metasync: bool = False,
        apply_sync: bool = True,
        boot_id_path: str = unsynced.BOOT_ID_PATH_DEFAULT,
        redelivery_clock: Callable[[], int] | None = None,
        free_bytes: Callable[[str], int] = disk_free_bytes,
        plants: frozenset[str] = frozenset(),
    ) -> None:
        os.makedirs(path, exist_ok=True)
        self.path = path
        boot = unsynced.boot_id(boot_id_path)
        if sync:
            self._check_trusted(boot, discard=not apply_sync)
        # With sync off altogether (tests, the simulator) losing writes is accepted: no marker.
        self._unsynced = sync and not apply_sync and self._mark_unsynced(boot)
        self._env = lmdb.open(
            path,
            map_size=map_size_bytes,
            max_dbs=LMDB_NAMED_DBS_MAX,
            max_readers=LMDB_READERS_MAX,
            sync=sync and not self._unsynced,
            metasync=metasync,
            readahead=False,  # random access over data larger than memory: no wasted reads
        )
        if sync and not self._unsynced:
            self._env.sync(True)  # whatever a node left unsynced is durable before we write
            unsynced.mark_synced(path)
        self._redelivery_clock = redelivery_clock
        self._planted_hash_numbers = identity.PLANT_NODE_NUMBER_BY_HASH in plants
        self._room = Room(self._env, path, map_size_bytes, map_size_max_bytes, free_bytes)
        self._gate = self._room.gate
        with self._env.begin(write=True) as txn:
            handles = {name: self._env.open_db(name.encode(), txn=txn) for name in DB_NAMES}
            self._dbs = Dbs(**handles)
            stored = txn.get(META_FORMAT, db=self._dbs.meta)
            if stored is None:
                txn.put(META_FORMAT, U16.pack(STATE_FORMAT_VERSION), db=self._dbs.meta)
        version = STATE_FORMAT_VERSION if stored is None else U16.unpack(stored)[0]
        if version == STATE_FORMAT_VERSION_V1:
            migrate_from_v1(self._env, self._dbs)  # doq/state/migrate.py
        elif version != STATE_FORMAT_VERSION:
            self._env.close()
            raise StateFormatError(f"{path} holds state format {version}")

    def _check_trusted(self, boot: str | None, *, discard: bool) -> None:
        if unsynced.is_trusted(self.path, boot):
            return
        if not discard:
            raise StateUntrustedError(
                f"{self.path} was written without sync and the machine restarted since; start "
                "the node to rebuild it from its snapshot and log"
            )
        logger.warning(
            "%s was written without sync and the machine restarted since: discarded; it is "
            "rebuilt from the snapshot and the Raft log",
            self.path,
        )
        unsynced.discard(self.path)

    def _mark_unsynced(self, boot: str | None) -> bool:
        """Mark before the first unsynced write; a disk too full for the marker gets synced
        applies instead (the node must start on a full disk, docs/operations.md "Disk full")."""
        try:
            unsynced.mark_unsynced(self.path, boot)
        except OSError as exc:
            logger.warning("%s: applies synced (no room for the marker: %s)", self.path, exc)
            return False
        return True

    # --- the StateMachine contract ---------------------------------------------------------------
    def last_applied(self) -> tuple[int, int]:
        with self._gate, self._env.begin() as txn:
            return read_applied(txn, self._dbs)

    def apply(self, entries: Sequence[Entry]) -> list[Any]:
        """Raises ``StorageFull`` (nothing applied) when there is no room; see the module doc."""
        if not entries:
            return []
        return self._room.write(lambda: self._apply_batch(entries))

    def _apply_batch(self, entries: Sequence[Entry]) -> list[Any]:
        batch = WriteBatch(self._env, self._dbs)
        try:
            expected = read_applied(batch.txn, self._dbs)[0] + 1
            results: list[Any] = []
            for entry in entries:
                if entry.index != expected:
                    raise ApplyOrderError(f"entry {entry.index} applied after {expected - 1}")
                expected += 1
                results.append(self._apply_one(batch, entry))
            batch.commit((entries[-1].index, entries[-1].term))
        except BaseException:
            batch.abort()
            raise
        return results

    def snapshot(self, path: str) -> tuple[int, int]:
        with self._gate, self._env.begin() as txn:
            index, term = read_applied(txn, self._dbs)
            write_snapshot_file(txn, self._dbs, path, index, term)
        return index, term

    def snapshot_command(self, path: str) -> list[str]:
        """The argv of a process that writes the same snapshot as ``snapshot(path)`` (from its own
        read transaction, so at whatever index is applied when it begins), off this process's GIL
        (doq/state/snapshot_process.py). A reader slot left by a killed child would pin the pages
        it read, and the file would grow: slots of dead processes are cleared first."""
        self._env.reader_check()
        return snapshot_process.command(self.path, path)

    def restore(self, path: str) -> tuple[int, int]:
        """Replace the whole state with the snapshot file, atomically: a damaged file raises
        ``SnapshotFormatError`` and changes nothing; no room raises ``StorageFull``, likewise."""
        with open(path, "rb") as source:
            verify(source)
            return self._room.write(lambda: self._load_snapshot(source))

    def _load_snapshot(self, source: io.BufferedReader) -> tuple[int, int]:
        source.seek(0)
        with self._env.begin(write=True) as txn:
            index_term = load_into(txn, self._dbs, source)
            if read_applied(txn, self._dbs) != index_term:
                # Raising inside the block aborts the transaction: nothing changes.
                raise SnapshotFormatError("the snapshot's header and contents disagree")
        return index_term

    def close(self) -> None:
        """Sync what applies left unsynced, so a clean stop needs no rebuild after a reboot."""
        try:
            if self._unsynced:
                self._env.sync(True)
                unsynced.mark_synced(self.path)
        finally:
            self._env.close()

    # --- applying ------------------------------------------------------------------------------
    def _apply_one(self, batch: WriteBatch, entry: Entry) -> Result | None:
        if entry.kind != EntryKind.NORMAL:
            return None
        try:
            command = decode_command(entry.data)
        except CommandDecodeError as exc:
            return Rejected(RejectCode.INVALID, str(exc))
        now_ms = max(command.ts_ms, batch.meta.clock_ms)
        batch.meta.clock_ms = now_ms
        if isinstance(command, RestoreState):
            return self._restore_command(batch, command)
        if self._planted_hash_numbers and isinstance(command, AssignNodeNumber):
            return identity.assign_node_number_by_hash(batch, command)
        expiry_ms = now_ms if self._redelivery_clock is None else self._redelivery_clock()
        handler = handlers.HANDLERS.get(type(command)) or batch_ops.HANDLERS[type(command)]
        return handler(batch, command, handlers.Clock(now_ms, expiry_ms))

    def _restore_command(self, batch: WriteBatch, command: RestoreState) -> Result:
        """Replace the state inside the batch's transaction. The clock and the ID floor keep the
        larger of old and new, so neither goes back however old the backup is; the node numbers
        stay those of this cluster (doq/state/identity.py)."""
        try:
            index, term = verify(io.BytesIO(command.snapshot))
        except SnapshotFormatError as exc:
            return Rejected(RejectCode.INVALID, f"not a restorable snapshot: {exc}")
        batch.flush()
        before = batch.meta
        node_numbers = identity.carried_over(batch.txn, self._dbs)
        load_into(batch.txn, self._dbs, io.BytesIO(command.snapshot))
        identity.put_back(batch.txn, self._dbs, node_numbers)
        batch.reload()
        batch.meta.clock_ms = max(batch.meta.clock_ms, before.clock_ms)
        batch.meta.id_floor = max(batch.meta.id_floor, before.id_floor)
        batch.meta.next_queue_id = max(batch.meta.next_queue_id, before.next_queue_id)
        return StateRestored(index, term)

    # --- reads (each in its own read transaction) ------------------------------------------------
    def queue_info(self, name: str) -> QueueInfo | None:
        with self._gate, self._env.begin() as txn:
            return reads.queue_info(txn, self._dbs, name)

    def list_queues(self) -> list[QueueInfo]:
        with self._gate, self._env.begin() as txn:
            return reads.list_queues(txn, self._dbs)

    def get_message(self, queue: str, message_id: int) -> StoredMessage | Rejected:
        with self._gate, self._env.begin() as txn:
            return reads.get_message(txn, self._dbs, queue, message_id)

    def next_due_ms(self, queue: str) -> int | None:
        """When something of ``queue`` next comes due by time alone (doq/state/due.py)."""
        with self._env.begin() as txn:
            return due.next_due_ms(txn, self._dbs, queue)

    def earliest_deadlines_ms(self) -> dict[str, int]:
        """Each queue with messages in flight, and its earliest deadline (doq/state/due.py)."""
        with self._env.begin() as txn:
            return due.earliest_deadlines_ms(txn, self._dbs)

    def peek(self, queue: str, limit: int) -> list[StoredMessage] | Rejected:
        with self._gate, self._env.begin() as txn:
            return reads.peek(txn, self._dbs, queue, limit)

    def id_floor(self) -> int:
        """The largest generated message ID stored: a new leader seeds its generator above it."""
        with self._gate, self._env.begin() as txn:
            return read_meta(txn, self._dbs).id_floor

    def node_number(self, node_id: str) -> int | None:
        """The node number ``node_id``'s message IDs carry, None until one is assigned."""
        with self._env.begin() as txn:
            return identity.node_number(txn, self._dbs, node_id)

    def clock_ms(self) -> int:
        """The state's clock: the largest command time applied so far."""
        with self._gate, self._env.begin() as txn:
            return read_meta(txn, self._dbs).clock_ms

    def logical_dump(self) -> dict[str, Any]:
        with self._gate, self._env.begin() as txn:
            return reads.logical_dump(txn, self._dbs)
