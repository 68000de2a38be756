"""What a backup holds, per queue, for the checkers of a run that restores it (``RestoreState``).

A backup is the state machine's snapshot file (doq/service.py ``backup_at``); restoring it
replaces every queue at once. The queue safety checker and the linearizability model need its
content as they know queues: each message with its priority, group, content, and whether and
until when it is in flight, and the queue's counters. The bytes are read by the real state machine
(restored into a scratch LMDB environment), once per distinct backup.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile

import attrs

from doq.state.machine import QueueStateMachine
from simulations.checkers.model import INITIAL, State

SCRATCH_MAP_SIZE_BYTES = 64 << 20

# (id, priority, group, content, in flight, deadline in command time (ms))
StoredMessage = tuple[int, int, str, str, bool, int]


@attrs.frozen
class QueueContent:
    ack_timeout_s: int
    messages: tuple[StoredMessage, ...]  # sorted by ID
    enqueued_total: int
    acked_total: int


class BackupReader:
    def __init__(self) -> None:
        self.directory: str | None = None  # the run's scratch space (set once it exists)
        self._read: dict[bytes, dict[str, QueueContent]] = {}

    def contents(self, data: bytes) -> dict[str, QueueContent]:
        """Each queue the backup holds, by name."""
        key = hashlib.blake2b(data, digest_size=16).digest()
        known = self._read.get(key)
        if known is None:
            known = self._read[key] = self._decode(data)
        return known

    def _decode(self, data: bytes) -> dict[str, QueueContent]:
        scratch = tempfile.mkdtemp(prefix="backup-", dir=self.directory)
        try:
            path = os.path.join(scratch, "backup.snap")
            with open(path, "wb") as f:
                f.write(data)
            state = QueueStateMachine(
                os.path.join(scratch, "state"), map_size_bytes=SCRATCH_MAP_SIZE_BYTES, sync=False
            )
            try:
                state.restore(path)
                return _queues(state)
            finally:
                state.close()
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def _queues(state: QueueStateMachine) -> dict[str, QueueContent]:
    dump = state.logical_dump()
    names = {record.queue_id: record.name for _key, record in dump["queues"]}
    messages: dict[str, list[StoredMessage]] = {name: [] for name in names.values()}
    for (queue_id, message_id), r in dump["messages"]:
        stored = (message_id, r.priority, r.group, r.content, r.in_flight, r.deadline_ms)
        messages[names[queue_id]].append(stored)
    out = {}
    for name, stored_messages in messages.items():
        info = state.queue_info(name)
        assert info is not None, name
        out[name] = QueueContent(
            info.settings.ack_timeout_s,
            tuple(sorted(stored_messages)),
            info.enqueued_total,
            info.acked_total,
        )
    return out


def model_state(content: QueueContent | None) -> State:
    """The linearizability model's state of a queue restored to ``content`` (None: the backup
    has no such queue): its in-flight messages in deadline order, as the model keeps them."""
    if content is None:
        return INITIAL
    messages = tuple((m[0], m[1], m[2], m[3]) for m in content.messages)
    by_deadline = sorted((m for m in content.messages if m[4]), key=lambda m: (m[5], m[0]))
    in_flight = tuple(m[0] for m in by_deadline)
    return (True, messages, in_flight, content.enqueued_total, content.acked_total)
