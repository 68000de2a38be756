"""The values the consensus core consumes and produces: log entries, hard state, cluster
configurations and the messages peers exchange.

They are frozen attrs classes: values that can be compared, hashed, logged and replayed. The wire
codec (``raft_zmq.codec``) turns the messages into bytes; the core never sees bytes on the wire.
Node IDs are strings (``"node-0"``); an index or term of 0 means "none" (the log starts at 1).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

import attrs

NodeId = str


class EntryKind(enum.IntEnum):
    """What a log entry carries."""

    NORMAL = 0  # an opaque command for the state machine
    NOOP = 1  # appended by every new leader so that it can commit an entry of its own term
    CONFIG = 2  # a complete new cluster configuration (see ``encode_config``)


@attrs.frozen(slots=True)
class Entry:
    index: int
    term: int
    kind: int  # an EntryKind value; a plain int so that decoding stays cheap
    data: bytes = b""


@attrs.frozen(slots=True)
class HardState:
    """What must be durable before the node speaks: its term, its vote in that term, and the
    commit index it knows (kept for restarts; commit is never reported beyond durable entries)."""

    term: int = 0
    vote: NodeId | None = None
    commit: int = 0


class Suffrage(enum.IntEnum):
    VOTER = 0  # counts toward elections and commitment
    NONVOTER = 1  # receives the log (catching up, or a read replica); never counted


@attrs.frozen(slots=True)
class Server:
    id: NodeId
    address: str  # the Raft (ZeroMQ) address, "host:port"
    suffrage: int = Suffrage.VOTER
    # Opaque to Raft, owned by the application (doq keeps the server's HTTP address here), so
    # that membership and what the application needs to reach a member change atomically.
    metadata: str = ""


def _sorted_by_id(servers: Iterable[Server]) -> tuple[Server, ...]:
    return tuple(sorted(servers, key=lambda s: s.id))


@attrs.frozen(slots=True)
class ClusterConfig:
    """A complete membership: who is in the cluster, where, and who votes. Servers are kept sorted
    by ID so that equal configurations are equal values."""

    servers: tuple[Server, ...] = attrs.field(default=(), converter=_sorted_by_id)

    @property
    def voters(self) -> frozenset[NodeId]:
        return frozenset(s.id for s in self.servers if s.suffrage == Suffrage.VOTER)

    @property
    def ids(self) -> frozenset[NodeId]:
        return frozenset(s.id for s in self.servers)

    def get(self, node_id: NodeId) -> Server | None:
        for s in self.servers:
            if s.id == node_id:
                return s
        return None

    def with_server(self, server: Server) -> ClusterConfig:
        return ClusterConfig((*(s for s in self.servers if s.id != server.id), server))

    def without(self, node_id: NodeId) -> ClusterConfig:
        return ClusterConfig(tuple(s for s in self.servers if s.id != node_id))


@attrs.frozen(slots=True)
class SnapshotMeta:
    """The point a snapshot covers: every entry up to ``index`` (of ``term``) is inside it, and
    ``config`` is the configuration in force at that index."""

    index: int = 0
    term: int = 0
    config: ClusterConfig = ClusterConfig()


# --- messages ------------------------------------------------------------------------------------
# Every message carries the sender's term, the sender and the recipient. Replies echo enough of the
# request (indexes, sequence numbers) that a stale or duplicated reply is recognised and ignored.


@attrs.frozen(slots=True)
class RequestVote:
    term: int  # a pre-vote carries the term the candidate *would* use (its term + 1)
    sender: NodeId
    to: NodeId
    last_index: int
    last_term: int
    pre_vote: bool = False
    transfer: bool = False  # campaign ordered by the leader (TimeoutNow): ignore leader stickiness


@attrs.frozen(slots=True)
class RequestVoteReply:
    term: int
    sender: NodeId
    to: NodeId
    granted: bool
    pre_vote: bool = False


@attrs.frozen(slots=True)
class AppendEntries:
    term: int
    sender: NodeId
    to: NodeId
    prev_index: int
    prev_term: int
    entries: tuple[Entry, ...]
    commit: int


@attrs.frozen(slots=True)
class AppendEntriesReply:
    """On success ``index`` is the last index the follower now holds matching the leader (the
    request's prev_index + len(entries)). On rejection ``index`` is the rejected prev_index and
    the hint says where to look next (etcd's fast backtracking): ``conflict_index`` is the largest
    index at or below prev_index whose term in the follower's log is at most the request's
    prev_term, and ``conflict_term`` is the follower's term there (0 when it has none)."""

    term: int
    sender: NodeId
    to: NodeId
    success: bool
    index: int
    conflict_term: int = 0
    conflict_index: int = 0


@attrs.frozen(slots=True)
class Heartbeat:
    """Leader liveness and ReadIndex confirmation. ``commit`` is capped at what the follower is
    known to hold, so that a follower never commits entries it may not have. ``leader_address``
    lets a server that is not yet in its own copy of the configuration (it is joining, its log
    is empty) learn where to answer, as hashicorp/raft's RPC headers carry the leader's address."""

    term: int
    sender: NodeId
    to: NodeId
    commit: int
    read_seq: int  # the leader's heartbeat round; a reply confirms leadership as of this round
    leader_address: str = ""


@attrs.frozen(slots=True)
class HeartbeatReply:
    term: int
    sender: NodeId
    to: NodeId
    read_seq: int
    last_index: int  # lets the leader resume replication to a follower that fell behind


@attrs.frozen(slots=True)
class InstallSnapshot:
    """Emitted by the core when a follower needs entries the leader has compacted away. The data
    itself is streamed by the driver as ``SnapshotChunk`` messages; when the last chunk has
    arrived, the follower's driver hands this message (without data) to its core."""

    term: int
    sender: NodeId
    to: NodeId
    meta: SnapshotMeta


@attrs.frozen(slots=True)
class InstallSnapshotReply:
    term: int
    sender: NodeId
    to: NodeId
    index: int  # the snapshot index now installed (or the follower's last index when refused)
    success: bool


@attrs.frozen(slots=True)
class TimeoutNow:
    """Leadership transfer: the recipient, now up to date, should campaign at once."""

    term: int
    sender: NodeId
    to: NodeId


@attrs.frozen(slots=True)
class SnapshotChunk:
    """Driver-level: one piece of a snapshot's bytes, streamed leader to follower. The core never
    sees it. ``offset`` is where ``data`` starts; ``done`` marks the last piece; ``total`` is the
    snapshot's size in bytes."""

    term: int
    sender: NodeId
    to: NodeId
    meta: SnapshotMeta
    offset: int
    total: int
    data: bytes
    done: bool


@attrs.frozen(slots=True)
class SnapshotChunkReply:
    """Driver-level: the follower has ``offset`` bytes; ``ok`` is false when it wants a restart
    from zero (a different snapshot, a gap)."""

    term: int
    sender: NodeId
    to: NodeId
    snapshot_index: int
    offset: int
    ok: bool


Message = (
    RequestVote
    | RequestVoteReply
    | AppendEntries
    | AppendEntriesReply
    | Heartbeat
    | HeartbeatReply
    | InstallSnapshot
    | InstallSnapshotReply
    | TimeoutNow
    | SnapshotChunk
    | SnapshotChunkReply
)

MESSAGE_TYPES: tuple[type, ...] = (
    RequestVote,
    RequestVoteReply,
    AppendEntries,
    AppendEntriesReply,
    Heartbeat,
    HeartbeatReply,
    InstallSnapshot,
    InstallSnapshotReply,
    TimeoutNow,
    SnapshotChunk,
    SnapshotChunkReply,
)
