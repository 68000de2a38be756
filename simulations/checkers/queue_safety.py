"""Queue safety: what doq promises about messages, checked on the committed log and the replicas.

- Replicas agree: every node returns the same result for every entry it applies, and holds the
  same state (a digest of its snapshot bytes) at every applied index that is a multiple of
  ``STATE_DIGEST_STRIDE`` (nodes end their apply batches there) and after settling.
- On the committed stream (each entry once, in log order, with the result every replica
  computed):
  * an acked message never comes back: once acked (or delivered with ``ack``) a message ID is
    never delivered again, unless a new message is later enqueued under the same ID;
  * no two consumers hold a message with overlapping valid leases: a message is delivered again
    only once its lease has ended in command time (its deadline has passed, or it was nacked);
- A restore (``RestoreState``) puts every queue back to its backup: what the backup holds may
  be delivered again (acked since or not), its in-flight messages hold their leases until the
  backup's deadlines, and every other message is gone.
- At the end: every enqueue acknowledged to a client is in the committed log, and its message is
  still stored (ready or in flight) unless it was acked or deleted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import attrs

from doq.commands import CommandDecodeError, RestoreState, decode_command
from doq.state.machine import QueueStateMachine
from doq.state.results import (
    Acked,
    Dequeued,
    Enqueued,
    MessageDeleted,
    Nacked,
    QueueCreated,
    QueueDeleted,
    StateRestored,
    Touched,
)
from raft_zmq.core.types import Entry, EntryKind
from simulations.checkers.backups import BackupReader
from simulations.checkers.raft_safety import Violation

MS_PER_S = 1000


STATE_DIGEST_STRIDE = 16  # replicas' states are compared at every multiple of this index


def state_digest(state: QueueStateMachine, scratch_path: str) -> str:
    """A digest of the whole queue state: the state's own snapshot of it, which is the same bytes
    on every replica holding the same state (docs/state-machine.md), hashed."""
    state.snapshot(scratch_path)
    with open(scratch_path, "rb") as f:
        return hashlib.blake2b(f.read(), digest_size=16).hexdigest()


@attrs.frozen
class AppliedEntry:
    node: str  # the first node that applied it
    result_repr: str
    result: Any
    applied_us: int


class ReplicaAgreement:
    """The result of each index and the state digest at each batch end, first seen wins."""

    def __init__(self) -> None:
        self.applied: dict[int, AppliedEntry] = {}
        self.applied_index = 0  # every index up to here is in ``applied``
        self._digests: dict[int, tuple[str, str]] = {}  # index -> (digest, node)

    def on_applied(
        self, node_id: str, entries: Iterable[Entry], results: list[Any], now_us: int
    ) -> list[tuple[Entry, Any]]:
        """Check the results against the first node's; return the entries applied for the first
        time (in order), for the stream checks."""
        fresh = []
        for entry, result in zip(entries, results):
            text = repr(result)
            known = self.applied.get(entry.index)
            if known is None:
                assert entry.index == self.applied_index + 1, (entry.index, self.applied_index)
                self.applied[entry.index] = AppliedEntry(node_id, text, result, now_us)
                self.applied_index = entry.index
                fresh.append((entry, result))
            elif known.result_repr != text:
                raise Violation(
                    "replicas agree",
                    f"entry {entry.index}: {node_id} returned {text}, "
                    f"{known.node} returned {known.result_repr}",
                )
        return fresh

    def on_state(self, node_id: str, index: int, digest: str) -> None:
        known = self._digests.setdefault(index, (digest, node_id))
        if known[0] != digest:
            raise Violation(
                "replicas agree",
                f"{node_id} and {known[1]} hold different queue states at applied index {index}",
            )


@attrs.define
class _Lease:
    deadline_ms: int
    delivered_at: int  # log index of the delivery, for the report


class QueueSafety:
    def __init__(self, backups: BackupReader) -> None:
        self._backups = backups
        self.clock_ms = 0  # the state's clock: the largest command time so far
        self._ack_timeout_ms: dict[str, int] = {}
        self._leases: dict[tuple[str, int], _Lease] = {}
        self.gone: set[tuple[str, int]] = set()  # acked or deleted, not enqueued again since
        self.enqueued: set[tuple[str, int]] = set()  # every message ID the log ever created
        self.deleted_queues: set[str] = set()

    def on_entry(self, entry: Entry, result: Any) -> None:
        if entry.kind != EntryKind.NORMAL:
            return
        try:
            command = decode_command(entry.data)
        except CommandDecodeError:
            return
        now_ms = max(command.ts_ms, self.clock_ms)
        self.clock_ms = now_ms
        queue = getattr(command, "queue", getattr(command, "name", ""))
        if isinstance(result, QueueCreated):
            self._ack_timeout_ms[result.name] = result.settings.ack_timeout_s * MS_PER_S
        elif isinstance(result, Enqueued):
            self._enqueued(queue, result)
        elif isinstance(result, Dequeued):
            acked = bool(getattr(command, "ack", False))
            for message in result.messages:
                self._delivered(entry.index, queue, message.id, now_ms, acked)
        elif isinstance(result, Acked | MessageDeleted):
            self._leases.pop((queue, result.id), None)
            self.gone.add((queue, result.id))
        elif isinstance(result, Nacked):
            self._leases.pop((queue, result.id), None)
        elif isinstance(result, Touched):
            lease = self._leases.get((queue, result.id))
            if lease is not None:
                lease.deadline_ms = result.deadline_ms
        elif isinstance(result, QueueDeleted):
            self._forget_queue(result.name)
        elif isinstance(result, StateRestored) and isinstance(command, RestoreState):
            self._restored(entry.index, command.snapshot)

    def _restored(self, index: int, backup: bytes) -> None:
        contents = self._backups.contents(backup)
        restored = {(name, m[0]) for name, queue in contents.items() for m in queue.messages}
        self.gone = (self.gone | self.enqueued) - restored
        self.enqueued |= restored
        self._leases = {
            (name, m[0]): _Lease(m[5], index)
            for name, queue in contents.items()
            for m in queue.messages
            if m[4]
        }
        self._ack_timeout_ms = {
            name: queue.ack_timeout_s * MS_PER_S for name, queue in contents.items()
        }

    def _enqueued(self, queue: str, result: Enqueued) -> None:
        if result.duplicates == len(result.messages):
            return  # every ID was already stored: nothing new
        for message in result.messages:
            key = (queue, message.id)
            # New unless already stored (the result does not say which ones were duplicates when
            # only some were; a message ID can be enqueued again once acked).
            if result.duplicates == 0 or key in self.gone or key not in self.enqueued:
                self.gone.discard(key)
                self.enqueued.add(key)

    def _delivered(self, index: int, queue: str, message_id: int, now_ms: int, acked: bool) -> None:
        key = (queue, message_id)
        if key in self.gone:
            raise Violation(
                "acked message came back",
                f"entry {index} delivers message {message_id} of {queue}, acked before",
            )
        lease = self._leases.get(key)
        if lease is not None and lease.deadline_ms > now_ms:
            raise Violation(
                "one consumer per lease",
                f"entry {index} delivers message {message_id} of {queue} at {now_ms} ms while "
                f"the lease from entry {lease.delivered_at} is valid until "
                f"{lease.deadline_ms} ms",
            )
        if acked:
            self._leases.pop(key, None)
            self.gone.add(key)
            return
        timeout_ms = self._ack_timeout_ms.get(queue, 0)
        self._leases[key] = _Lease(now_ms + timeout_ms, index)

    def _forget_queue(self, name: str) -> None:
        """A deleted queue's messages are gone; its IDs may be reused by a new queue."""
        self.deleted_queues.add(name)
        self._leases = {k: v for k, v in self._leases.items() if k[0] != name}
        self.gone = {k for k in self.gone if k[0] != name}
        self.enqueued = {k for k in self.enqueued if k[0] != name}

    # --- at the end -----------------------------------------------------------------------------
    def check_acknowledged(
        self, acknowledged: Iterable[tuple[str, int, int]], stored: set[tuple[str, int]]
    ) -> None:
        """``acknowledged``: (queue, message ID, request ID) of every enqueue a client was told
        succeeded; ``stored``: (queue, message ID) of every message in the final state."""
        for queue, message_id, request_id in acknowledged:
            if queue in self.deleted_queues:
                continue  # deleting a queue deletes its messages (none of the workload does)
            key = (queue, message_id)
            if key not in self.enqueued:
                raise Violation(
                    "acknowledged enqueue lost",
                    f"request #{request_id} was told message {message_id} of {queue} is "
                    "enqueued, but no committed entry created it",
                )
            if key not in stored and key not in self.gone:
                raise Violation(
                    "acknowledged enqueue lost",
                    f"message {message_id} of {queue} (request #{request_id}) was neither acked "
                    "nor deleted, and is not in the final state",
                )
