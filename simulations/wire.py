"""What travels on the simulated network besides Raft's own messages, and how the trace names
every message in one short line.

Clients talk to any node (``ClientRequest``/``ClientResponse``, HTTP in the real system); a
follower forwards a request to the leader it knows (``Forward``/``ForwardReply``) and relays the
answer, as doq's HTTP layer does. Operations are frozen values so that the history and the
checkers can keep and compare them.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs

from raft_zmq.core.types import (
    AppendEntries,
    AppendEntriesReply,
    Heartbeat,
    HeartbeatReply,
    InstallSnapshot,
    InstallSnapshotReply,
    RequestVote,
    RequestVoteReply,
    SnapshotChunk,
    SnapshotChunkReply,
    TimeoutNow,
)

# --- operations a client asks for ---------------------------------------------------------------


@attrs.frozen
class OpCreate:
    queue: str
    fair: bool
    ack_timeout_s: int
    max_unacked: int = 0
    weighted: bool = False


@attrs.frozen
class OpEnqueue:
    queue: str
    content: str  # unique per operation: names the message in the history
    priority: int
    group: str = "default"
    client_id: int | None = None  # None: the leader assigns the ID


@attrs.frozen
class OpDequeue:
    queue: str
    ack: bool = False


@attrs.frozen
class OpAck:
    queue: str
    id: int


@attrs.frozen
class OpNack:
    queue: str
    id: int
    priority: int = 0  # 0 keeps the message's priority


@attrs.frozen
class OpTouch:
    queue: str
    id: int


@attrs.frozen
class OpUpdatePriority:
    queue: str
    id: int
    priority: int


@attrs.frozen
class OpInfo:
    """A linearizable read (ReadIndex) of the queue's counts."""

    queue: str


@attrs.frozen
class OpDeleteQueue:
    """Delete the queue and every message in it (a client that finds it gone creates it again)."""

    queue: str


@attrs.frozen
class OpIds:
    """``POST /API/v1/ids``: ``count`` message IDs for the client's own enqueues (no queue)."""

    count: int


@attrs.frozen(repr=False)
class BackupTaken:
    """A backup's answer: the state machine's snapshot file as of a linearizable point, and the
    log index it holds everything up to (doq/service.py ``backup_at``)."""

    index: int
    data: bytes

    def __repr__(self) -> str:
        return f"BackupTaken(index={self.index}, {len(self.data)} bytes)"


@attrs.frozen
class OpBackup:
    """``GET`` a backup of the whole state (every queue), through a ReadIndex barrier."""


@attrs.frozen
class OpRestore:
    """Restore a backup this client took (``RestoreState``): every queue goes back to it."""

    backup: BackupTaken


Op = (
    OpCreate
    | OpEnqueue
    | OpDequeue
    | OpAck
    | OpNack
    | OpTouch
    | OpUpdatePriority
    | OpInfo
    | OpDeleteQueue
    | OpIds
    | OpBackup
    | OpRestore
)
WRITE_OPS = (OpCreate, OpEnqueue, OpDequeue, OpAck, OpNack, OpTouch, OpUpdatePriority)


class Outcome(enum.Enum):
    OK = "ok"  # done; ``result`` is the state machine's answer (possibly a rejection)
    FAILED = "failed"  # definitely not done: nothing was proposed (no leader, not the leader)
    UNKNOWN = "unknown"  # may or may not have been done (leadership lost, timeout)


@attrs.frozen
class ClientRequest:
    request_id: int
    client: str
    op: Op


@attrs.frozen
class ClientResponse:
    request_id: int
    outcome: Outcome
    result: Any = None
    detail: str = ""


@attrs.frozen
class Forward:
    request: ClientRequest
    origin: str  # the node the client asked


@attrs.frozen
class ForwardReply:
    response: ClientResponse


# --- one-line names for the trace --------------------------------------------------------------


@attrs.frozen
class ClockProbe:
    """doq/peerclock.py's GET /API/v1/cluster/time: the prober's clock when it asked."""

    sent_ms: int


@attrs.frozen
class ClockReply:
    """The answer: the probed node's own (unbounded) clock, and the probe's send time echoed."""

    sent_ms: int
    peer_ms: int


def describe(payload: Any) -> str:
    t = type(payload)
    if t is AppendEntries:
        m = payload
        return f"AE t{m.term} prev {m.prev_index}/{m.prev_term} +{len(m.entries)} c{m.commit}"
    if t is AppendEntriesReply:
        m = payload
        verdict = "ok" if m.success else f"no hint {m.conflict_index}/{m.conflict_term}"
        return f"AER t{m.term} {verdict} i{m.index}"
    if t is Heartbeat:
        return f"HB t{payload.term} c{payload.commit} r{payload.read_seq}"
    if t is HeartbeatReply:
        return f"HBR t{payload.term} r{payload.read_seq} last {payload.last_index}"
    if t is RequestVote:
        m = payload
        kind = "PreVote" if m.pre_vote else "Vote"
        return f"{kind} t{m.term} last {m.last_index}/{m.last_term}"
    if t is RequestVoteReply:
        kind = "PreVoteR" if payload.pre_vote else "VoteR"
        return f"{kind} t{payload.term} {'yes' if payload.granted else 'no'}"
    if t is InstallSnapshot:
        return f"IS t{payload.term} at {payload.meta.index}/{payload.meta.term}"
    if t is InstallSnapshotReply:
        return f"ISR t{payload.term} i{payload.index} {'ok' if payload.success else 'no'}"
    if t is SnapshotChunk:
        m = payload
        return f"Chunk t{m.term} {m.meta.index} @{m.offset}+{len(m.data)}/{m.total}"
    if t is SnapshotChunkReply:
        return f"ChunkR @{payload.offset} {'ok' if payload.ok else 'restart'}"
    if t is TimeoutNow:
        return f"TimeoutNow t{payload.term}"
    if t is ClientRequest:
        return f"req#{payload.request_id} {describe_op(payload.op)}"
    if t is ClientResponse:
        return f"resp#{payload.request_id} {payload.outcome.value} {short_result(payload.result)}"
    if t is Forward:
        return f"fwd req#{payload.request.request_id}"
    if t is ForwardReply:
        return f"fwd-resp#{payload.response.request_id} {payload.response.outcome.value}"
    if t is ClockProbe:
        return "clock?"
    if t is ClockReply:
        return f"clock {payload.peer_ms}"
    return t.__name__


def describe_op(op: Any) -> str:
    fields = attrs.astuple(op, recurse=False)
    return f"{type(op).__name__[2:]}{fields}"


def short_result(result: Any) -> str:
    if result is None:
        return ""
    text = repr(result)
    return text if len(text) <= 120 else text[:117] + "..."
