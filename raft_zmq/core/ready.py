"""What the core hands to its driver, and the knobs and errors of its API.

The driver's loop, in this order (etcd's Ready contract, with the leader's parallel disk write):
1. ``rd = core.ready()``
2. send ``rd.early_messages`` (a leader's AppendEntries and heartbeats: they do not depend on
   anything this Ready persists, so the leader writes its own log while they are on the wire).
   A round whose ``hard_state`` changes term or vote has no early messages: everything it says
   speaks for that term or vote, so all of it waits for the sync (issue 10, finding 2: a single
   voter wins inside ``campaign()`` and would otherwise replicate for a term it may forget);
3. persist ``rd.snapshot`` (restoring the state machine from it), ``rd.hard_state`` and
   ``rd.entries`` in one synced transaction;
4. send ``rd.messages`` (votes, acknowledgements: only now are they true);
5. apply ``rd.committed`` in order, serve ``rd.read_states`` once applied reaches their index,
   fail ``rd.failed_reads``;
6. ``core.advance(rd)``. A snapshot installed in step 3 becomes the one this node streams to
   lagging followers if it leads later: the driver keeps its file.
No other call into the core may happen between 1 and 6.
"""

from __future__ import annotations

import enum

import attrs

# The planted-bug names live in plants.py; they are re-exported here for callers that import them
# from the Ready contract's module, as they did before plants.py existed.
from raft_zmq.core.plants import CORE_PLANTS as CORE_PLANTS
from raft_zmq.core.plants import PLANT_ACK_BEFORE_SYNC as PLANT_ACK_BEFORE_SYNC
from raft_zmq.core.plants import PLANT_COMMIT_PREVIOUS_TERM as PLANT_COMMIT_PREVIOUS_TERM
from raft_zmq.core.plants import PLANT_EARLY_BEFORE_TERM_SYNC as PLANT_EARLY_BEFORE_TERM_SYNC
from raft_zmq.core.plants import PLANT_VOTE_WITHOUT_LOG_CHECK as PLANT_VOTE_WITHOUT_LOG_CHECK
from raft_zmq.core.types import ClusterConfig, Entry, HardState, Message, NodeId, SnapshotMeta


class Role(enum.Enum):
    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre-candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


@attrs.frozen
class SoftState:
    """Volatile facts the driver reacts to (metrics, failing proposals when leadership is lost)."""

    role: Role
    leader: NodeId | None
    term: int


@attrs.frozen
class ReadState:
    """A ReadIndex request confirmed by a majority: serve it once applied >= ``index``."""

    ctx: int
    index: int


@attrs.frozen
class Ready:
    hard_state: HardState | None = None
    entries: tuple[Entry, ...] = ()
    snapshot: SnapshotMeta | None = None
    early_messages: tuple[Message, ...] = ()
    messages: tuple[Message, ...] = ()
    committed: tuple[Entry, ...] = ()
    read_states: tuple[ReadState, ...] = ()
    failed_reads: tuple[int, ...] = ()
    soft_state: SoftState | None = None
    config: ClusterConfig | None = None  # set when the configuration in force changed

    @property
    def must_sync(self) -> bool:
        """Whether step 3 must reach the disk before step 4 (anything but an empty Ready)."""
        return bool(self.hard_state is not None or self.entries or self.snapshot is not None)

    def is_empty(self) -> bool:
        return not (
            self.must_sync
            or self.early_messages
            or self.messages
            or self.committed
            or self.read_states
            or self.failed_reads
            or self.soft_state is not None
            or self.config is not None
        )


class ConfigChangeKind(enum.Enum):
    ADD_VOTER = "add_voter"
    ADD_NONVOTER = "add_nonvoter"
    REMOVE = "remove"


@attrs.frozen
class ConfigChange:
    kind: ConfigChangeKind
    node_id: NodeId
    address: str = ""
    metadata: str = ""  # the application's data for this server (Server.metadata)


@attrs.frozen
class CoreOptions:
    """Timing is in ticks; the driver decides how long a tick is. Every limit has its unit."""

    election_timeout_ticks: int = 10  # randomized per election in [this, 2 x this)
    heartbeat_interval_ticks: int = 1
    inflight_appends_max: int = 256  # AppendEntries unacknowledged per follower
    inflight_bytes_max: int = 64 * 1024 * 1024  # their entries' bytes per follower
    append_bytes_max: int = 1024 * 1024  # entries per AppendEntries (at least one entry)
    entry_bytes_max: int = 8 * 1024 * 1024  # one proposal's data; must fit the wire's frame
    apply_bytes_max: int = 16 * 1024 * 1024  # committed entries handed out per Ready
    uncommitted_bytes_max: int = 256 * 1024 * 1024  # proposals refused beyond this backlog
    pre_vote: bool = True
    check_quorum: bool = True
    plants: frozenset[str] = frozenset()

    def __attrs_post_init__(self) -> None:
        assert self.heartbeat_interval_ticks >= 1
        assert self.election_timeout_ticks > self.heartbeat_interval_ticks
        assert self.inflight_appends_max >= 1
        unknown = self.plants - CORE_PLANTS
        assert not unknown, f"unknown planted bugs {sorted(unknown)}"


class NotLeader(Exception):
    """This node cannot take the request; ``leader`` is the leader it knows, if any."""

    def __init__(self, leader: NodeId | None) -> None:
        super().__init__(f"not the leader (leader: {leader or 'unknown'})")
        self.leader = leader


class ProposalDropped(Exception):
    """The leader refuses a proposal for now (transfer in progress, backlog full, a configuration
    change pending); nothing was appended, so it is safe to retry."""


class ProposalTooLarge(ValueError):
    """The proposal is larger than one entry may be; it can never be accepted as it is."""


class ConfigChangeRejected(Exception):
    """A configuration change that can never succeed as asked (removing an unknown server, the last
    voter, ...)."""
