"""The command-line client's offline commands, as the Go server's CLI has them: ``doq get
queues``, ``doq get messages`` and ``doq restore -f FILE`` on a stopped node's data directory
(docs/client.md, "Offline").

A running node holds LMDB's lock on its environments (LMDB keeps a shared ``fcntl`` lock on byte
0 of ``lock.mdb`` while an environment is open), so an exclusive lock we cannot take means a
node is running on the directory: we refuse, and open nothing. Restoring replaces that node's
queue state atomically (a damaged file changes nothing, doq/state/machine.py); on a cluster, use
the online ``doq restore`` so that every replica restores the same state.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from typing import Any

from doq.state.machine import QueueStateMachine
from doq.state.results import QueueInfo, Rejected, StoredMessage

LMDB_LOCK_FILE = "lock.mdb"
STATE_DIR = "state"


class OfflineError(Exception):
    """The directory cannot be used offline; the message says why."""


class NodeRunning(OfflineError):
    """A node has the directory open."""


def node_dir(data_dir: str, node_id: str | None) -> str:
    """The node directory holding ``state/``: ``data_dir`` itself, ``data_dir/node_id``, or the
    only node directory inside ``data_dir`` (``--storage.data_dir`` keeps each node's data under
    its ID, docs/operations.md)."""
    if os.path.isdir(os.path.join(data_dir, STATE_DIR)):
        return data_dir
    if node_id is not None:
        path = os.path.join(data_dir, node_id)
        if not os.path.isdir(os.path.join(path, STATE_DIR)):
            raise OfflineError(f"{path} holds no node's data")
        return path
    if not os.path.isdir(data_dir):
        raise OfflineError(f"{data_dir} is not a directory")
    found = sorted(
        name
        for name in os.listdir(data_dir)
        if os.path.isdir(os.path.join(data_dir, name, STATE_DIR))
    )
    if len(found) != 1:
        say = "no node's data" if not found else f"several nodes' data ({', '.join(found)})"
        raise OfflineError(f"{data_dir} holds {say}: name one with --node-id")
    return os.path.join(data_dir, found[0])


def _lock_files(path: str) -> Iterator[str]:
    for root, _dirs, files in os.walk(path):
        if LMDB_LOCK_FILE in files:
            yield os.path.join(root, LMDB_LOCK_FILE)


def refuse_if_running(path: str) -> None:
    for lock_file in _lock_files(path):
        fd = os.open(lock_file, os.O_RDWR)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 0)
        except OSError:
            raise NodeRunning(
                f"a node is running on {path} ({lock_file} is locked): stop it first, or use the "
                "online command with --server"
            ) from None
        finally:
            os.close(fd)  # also drops the lock, if we took it


def open_state(path: str) -> QueueStateMachine:
    refuse_if_running(path)
    return QueueStateMachine(os.path.join(path, STATE_DIR))


def queue_row(info: QueueInfo) -> dict[str, Any]:
    settings = info.settings
    return {
        "name": info.name,
        "type": str(info.type),
        "ready": info.ready,
        "unacked": info.unacked,
        "total": info.ready + info.unacked,
        "settings": {
            "ack_timeout": settings.ack_timeout_s,
            "max_unacked": settings.max_unacked,
            "strategy": None if settings.strategy is None else settings.strategy.name,
        },
    }


def message_row(stored: StoredMessage) -> dict[str, Any]:
    m = stored.message
    return {
        "id": m.id,
        "priority": m.priority,
        "group": m.group,
        "content": m.content,
        "metadata": m.metadata,
        "in_flight": stored.in_flight,
    }


def list_queues(path: str) -> list[dict[str, Any]]:
    state = open_state(path)
    try:
        return [queue_row(q) for q in state.list_queues()]
    finally:
        state.close()


def list_messages(path: str, queue: str, limit: int, ids: list[int]) -> list[dict[str, Any]]:
    state = open_state(path)
    try:
        if ids:
            found = [state.get_message(queue, i) for i in ids]
        else:
            peeked = state.peek(queue, limit)
            found = [peeked] if isinstance(peeked, Rejected) else list(peeked)
        rows = []
        for item in found:
            if isinstance(item, Rejected):
                raise OfflineError(item.detail)
            rows.append(message_row(item))
        return rows
    finally:
        state.close()


def restore(path: str, backup_file: str) -> tuple[int, int]:
    state = open_state(path)
    try:
        return state.restore(backup_file)
    finally:
        state.close()
