"""The driver's logic, without I/O: everything between the consensus core and the world that is
the same in production (raft_zmq/node.py, under Trio) and in the simulator
(simulations/actors/node.py, under virtual time). This is the split etcd makes between
``RawNode`` and ``node.go``: the shells
only send, persist, apply and wait; what to feed the core, what a Ready means for the proposals
and reads waiting on it, when to snapshot and compact, and the snapshot streams' bookkeeping are
decided here, once (docs/raft.md, "The driver").

A shell's round, in the order of the Ready contract (raft_zmq/core/ready.py):

1. hand inputs over as they come: ``receive``, ``tick``, ``propose``, ``propose_config``,
   ``read``, ``call``;
2. ``feed(now_ms)`` steps them into the core and returns the outcomes known at once;
3. ``next_ready()`` returns the next ``Round`` (or None): set ``round.routes`` if given, send
   ``round.early``, start streams for ``round.snapshot_sends`` (``begin_stream``), persist the
   Ready's snapshot, hard state and entries, send ``round.late``, apply ``ready.committed``;
4. ``finish(round, results)`` advances the core and returns the outcomes: proposals applied or
   lost, reads ready or failed, streams to wake, whether to take a snapshot now.

Time enters as numbers handed in (``now_ms``); no clock, no randomness, no threads here.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

import attrs

from raft_zmq.core.raft import RaftCore
from raft_zmq.core.ready import (
    ConfigChange,
    ConfigChangeRejected,
    NotLeader,
    ProposalDropped,
    ProposalTooLarge,
    Ready,
    Role,
    SoftState,
)
from raft_zmq.core.types import (
    Heartbeat,
    InstallSnapshot,
    Message,
    NodeId,
    SnapshotChunk,
    SnapshotChunkReply,
    SnapshotMeta,
)
from raft_zmq.driver.chunk_sender import ChunkSender, StreamOptions
from raft_zmq.driver.errors import LeadershipLost, ProposalLost
from raft_zmq.driver.limits import (
    INBOUND_WHILE_BLOCKED_MESSAGES_MAX,
    MISSED_TICKS_MAX,
    PROPOSALS_PER_ROUND_MAX,
    SNAPSHOT_CHUNK_BYTES,
    SNAPSHOT_CHUNK_TIMEOUT_MS,
    SNAPSHOT_CHUNKS_IN_FLIGHT_MAX,
)
from raft_zmq.driver.plants import PLANT_SNAPSHOT_WRITTEN_UNCHECKED
from raft_zmq.driver.routes import Routes

T = TypeVar("T")

_DEFAULT_STREAM = StreamOptions(
    SNAPSHOT_CHUNK_BYTES, SNAPSHOT_CHUNKS_IN_FLIGHT_MAX, SNAPSHOT_CHUNK_TIMEOUT_MS
)


@attrs.frozen
class DriverOptions:
    snapshot_interval_entries: int = 50_000  # applied entries between two snapshots
    snapshot_trailing_entries: int = 10_000  # entries kept in the log behind a snapshot
    stream: StreamOptions = attrs.field(factory=lambda: _DEFAULT_STREAM)
    plants: frozenset[str] = frozenset()  # the simulator's planted bugs (driver/plants.py)


@attrs.define
class Outcomes(Generic[T]):
    """What the shell must do or answer after a call into the driver."""

    appended: list[tuple[T, int, int]] = attrs.Factory(list)  # a proposal is in the log
    resolved: list[tuple[T, Any]] = attrs.Factory(list)  # a proposal applied: its result
    failed: list[tuple[T, Exception]] = attrs.Factory(list)  # a proposal or read failed
    reads_ready: list[tuple[T, int]] = attrs.Factory(list)  # serve: applied >= this index
    chunks: list[SnapshotChunk] = attrs.Factory(list)  # received: stage them (accept_chunk)
    streams: list[ChunkSender] = attrs.Factory(list)  # changed: send more, or they ended
    routes: dict[NodeId, str] | None = None  # the peers' addresses changed
    soft_state: SoftState | None = None
    applied: bool = False  # the applied index moved
    take_snapshot: bool = False  # write a snapshot now (then ``snapshot_written``)


@attrs.frozen
class Round:
    ready: Ready
    early: tuple[Message, ...]  # before persisting (a leader's AppendEntries)
    late: tuple[Message, ...]  # after persisting (votes, acknowledgements)
    snapshot_sends: tuple[InstallSnapshot, ...]  # streams the core asks for
    routes: dict[NodeId, str] | None  # set these before sending anything of the round


@attrs.define
class _Pending(Generic[T]):
    term: int
    token: T


class Driver(Generic[T]):
    """The driver of one core. ``T`` is the shell's token for a waiting caller (a Trio waiter, a
    simulated client's callback): the driver hands tokens back in outcomes, never looks inside."""

    def __init__(self, core: RaftCore, options: DriverOptions | None = None) -> None:
        self.core = core
        self.options = options or DriverOptions()
        self.applied_index = core.log.applied  # what the state machine holds
        self.routes = Routes(core.id)
        self.senders: dict[NodeId, ChunkSender] = {}
        self.storage_blocked = False  # a persist or an apply is waiting for room (StorageFull)
        self.stats: dict[str, int] = {
            "rounds": 0,
            "entries_applied": 0,
            "snapshots_taken": 0,
            "snapshots_sent": 0,
            "snapshots_installed": 0,
            "inbound_dropped_while_blocked": 0,
        }
        self._now_ms = 0
        self._inbound: list[Message] = []
        self._ticks = 0
        self._calls: list[Callable[[], None]] = []
        self._new_proposals: deque[tuple[bytes, T]] = deque()
        self._new_configs: list[tuple[ConfigChange, T]] = []
        self._new_reads: list[T] = []
        self._pending: dict[int, _Pending[T]] = {}
        self._reads: dict[int, T] = {}
        self._reads_ready: list[tuple[int, T]] = []
        self._read_ctx = 0
        self._snapshot_running = False
        self._out: Outcomes[T] = Outcomes()

    # --- inputs ------------------------------------------------------------------------------
    def receive(self, messages: Iterable[Message]) -> None:
        """Messages from peers. While blocked on storage at most
        ``INBOUND_WHILE_BLOCKED_MESSAGES_MAX`` wait; the rest are dropped and counted."""
        if not self.storage_blocked:
            self._inbound.extend(messages)
            return
        for msg in messages:
            if len(self._inbound) < INBOUND_WHILE_BLOCKED_MESSAGES_MAX:
                self._inbound.append(msg)
            else:
                self.stats["inbound_dropped_while_blocked"] += 1

    def tick(self, count: int = 1) -> None:
        """``count`` ticks elapsed; at most ``MISSED_TICKS_MAX`` are kept between two feeds."""
        self._ticks = min(self._ticks + count, MISSED_TICKS_MAX)

    def propose(self, data: bytes, token: T) -> None:
        """Queue a proposal; NotLeader, ProposalTooLarge, or ProposalDropped while blocked on a
        full store (nothing would be written meanwhile, and memory stays bounded), at once."""
        core = self.core
        if core.role is not Role.LEADER:
            raise NotLeader(core.leader)
        if len(data) > core.options.entry_bytes_max:
            raise ProposalTooLarge(f"{len(data)} B exceeds {core.options.entry_bytes_max} B")
        if self.storage_blocked:
            raise ProposalDropped("the store is full; retry once it has room")
        self._new_proposals.append((data, token))

    def propose_config(self, change: ConfigChange, token: T) -> None:
        """Queue a membership change; resolved (with None) once applied."""
        self._new_configs.append((change, token))

    def read(self, token: T) -> None:
        """Queue a ReadIndex read; NotLeader at once on a follower."""
        if self.core.role is not Role.LEADER:
            raise NotLeader(self.core.leader)
        self._new_reads.append(token)

    def call(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` (which may use the core) at the next feed, between rounds."""
        self._calls.append(fn)

    def has_input(self) -> bool:
        return bool(
            self._inbound
            or self._ticks
            or self._calls
            or self._new_proposals
            or self._new_configs
            or self._new_reads
        )

    # --- the round ---------------------------------------------------------------------------
    def feed(self, now_ms: int) -> Outcomes[T]:
        """Step every input into the core: messages first, then ticks (a loop that stalled must
        not let check-quorum judge the followers before reading the answers that arrived
        meanwhile), then calls, proposals and reads."""
        self._now_ms = now_ms
        self._feed_messages()
        ticks, self._ticks = self._ticks, 0
        for _ in range(ticks):
            self.core.tick()
        for sender in list(self.senders.values()):
            if sender.expire(now_ms):
                self._stream_changed(sender)
        calls, self._calls = self._calls, []
        for call in calls:
            call()
        self._feed_proposals()
        self._feed_reads()
        self._resolve_reads()
        return self._take()

    def next_ready(self) -> Round | None:
        core = self.core
        if not core.has_ready():
            return None
        rd = core.ready()
        routes = None
        if rd.config is not None:
            self.routes.on_config(rd.config)
            routes = self.routes.all()
            peers = self.routes.config_peers()
            for peer in [p for p in self.senders if p not in peers]:
                self._cancel_stream(peer)
        sends = tuple(m for m in rd.early_messages + rd.messages if isinstance(m, InstallSnapshot))
        early = tuple(m for m in rd.early_messages if not isinstance(m, InstallSnapshot))
        late = tuple(m for m in rd.messages if not isinstance(m, InstallSnapshot))
        return Round(rd, early, late, sends, routes)

    def finish(self, rnd: Round, results: list[Any]) -> Outcomes[T]:
        """The round's writes are durable and ``results`` are the state machine's results for
        ``rnd.ready.committed``: advance the core and say what that resolves."""
        rd, core = rnd.ready, self.core
        if rd.snapshot is not None:
            self.applied_index = rd.snapshot.index
            self.stats["snapshots_installed"] += 1
            self._out.applied = True
        if rd.committed:
            self._resolve_applied(rd, results)
        if rd.soft_state is not None:
            self._on_soft_state(rd.soft_state)
        for state in rd.read_states:
            token = self._reads.pop(state.ctx, None)
            if token is not None:
                self._reads_ready.append((state.index, token))
        for ctx in rd.failed_reads:
            token = self._reads.pop(ctx, None)
            if token is not None:
                self._out.failed.append((token, NotLeader(core.leader)))
        core.advance(rd)
        self.stats["rounds"] += 1
        self._resolve_reads()
        self._out.take_snapshot = self._should_snapshot()
        return self._take()

    def take_outcomes(self) -> Outcomes[T]:
        """Outcomes produced outside feed and finish (streams begun or cancelled)."""
        return self._take()

    # --- snapshots ---------------------------------------------------------------------------
    def snapshot_written(self, index: int) -> SnapshotMeta | None:
        """The state machine wrote a snapshot at applied ``index``; call between rounds. Returns
        its metadata, or None when it is already superseded (a snapshot received from the leader
        was installed meanwhile): discard the file then."""
        core = self.core
        if PLANT_SNAPSHOT_WRITTEN_UNCHECKED in self.options.plants:
            return core.snapshot_meta(index)
        latest = core.latest_snapshot
        if latest is not None and latest.index >= index:
            return None
        if index > core.log.applied or core.log.term(index) is None:
            return None
        return core.snapshot_meta(index)

    def snapshot_registered(self, meta: SnapshotMeta) -> SnapshotMeta | None:
        """The snapshot at ``meta`` is durable: stream it from now on. Returns where to compact
        the log to (keeping ``snapshot_trailing_entries`` behind it), or None; compact the
        storage, then call ``log_compacted``, in the same step between rounds."""
        core = self.core
        core.set_snapshot(meta)
        compact_to = meta.index - self.options.snapshot_trailing_entries
        if compact_to <= core.log.first_index() - 1 or core.log.term(compact_to) is None:
            return None
        return core.snapshot_meta(compact_to)

    def log_compacted(self) -> None:
        self.core.log_compacted()

    def snapshot_finished(self, taken: bool) -> None:
        """The snapshot that ``take_snapshot`` asked for is done (or was discarded)."""
        self._snapshot_running = False
        if taken:
            self.stats["snapshots_taken"] += 1

    def begin_stream(self, msg: InstallSnapshot, total_bytes: int) -> ChunkSender | None:
        """Start streaming the snapshot file (``total_bytes``) that ``msg`` asks for; None if
        that stream is already running. A running stream of an older snapshot is cancelled:
        the core moved on to a newer one (found by the simulator: ignoring it left the core
        waiting)."""
        running = self.senders.get(msg.to)
        if running is not None and running.msg.meta == msg.meta and not running.finished:
            return None
        if running is not None:
            self._cancel_stream(msg.to)
        sender = ChunkSender(msg, total_bytes, self.options.stream, self._now_ms)
        self.senders[msg.to] = sender
        return sender

    def abort_stream(self, sender: ChunkSender) -> None:
        """The shell could not go on with ``sender`` (its file could not be read)."""
        if self.senders.get(sender.peer) is sender:
            del self.senders[sender.peer]
            sender.cancel()
            self.call(lambda: self.core.report_snapshot(sender.peer, False))

    def stream_unavailable(self, msg: InstallSnapshot) -> None:
        """There is no file for the snapshot ``msg`` names: the core retries later."""
        self.call(lambda: self.core.report_snapshot(msg.to, False))

    # --- stopping ----------------------------------------------------------------------------
    def fail_all(self) -> list[T]:
        """The node stops: every token still waiting, forgotten here."""
        tokens = [p.token for p in self._pending.values()]
        tokens += [token for _, token in self._new_proposals]
        tokens += [token for _, token in self._new_configs]
        tokens += [*self._reads.values(), *self._new_reads]
        tokens += [token for _, token in self._reads_ready]
        self._pending.clear()
        self._new_proposals.clear()
        self._new_configs.clear()
        self._reads.clear()
        self._new_reads.clear()
        self._reads_ready.clear()
        for peer in list(self.senders):
            self._cancel_stream(peer)
        return tokens

    # --- internals ---------------------------------------------------------------------------
    def _take(self) -> Outcomes[T]:
        out, self._out = self._out, Outcomes()
        return out

    def _feed_messages(self) -> None:
        inbound, self._inbound = self._inbound, []
        for msg in inbound:
            if isinstance(msg, SnapshotChunk):
                self._out.chunks.append(msg)
            elif isinstance(msg, SnapshotChunkReply):
                sender = self.senders.get(msg.sender)
                if sender is not None and sender.on_reply(msg, self._now_ms):
                    self._stream_changed(sender)
            else:
                if (
                    isinstance(msg, Heartbeat)
                    and msg.leader_address
                    and self.routes.learn(msg.sender, msg.leader_address)
                ):
                    self._out.routes = self.routes.all()
                self.core.step(msg)

    def _feed_proposals(self) -> None:
        core = self.core
        for _ in range(min(len(self._new_proposals), PROPOSALS_PER_ROUND_MAX)):
            data, token = self._new_proposals.popleft()
            try:
                index = core.propose(data)
            except (NotLeader, ProposalDropped) as exc:
                self._out.failed.append((token, exc))
                continue
            self._pending[index] = _Pending(core.term, token)
            self._out.appended.append((token, index, core.term))
        configs, self._new_configs = self._new_configs, []
        for change, token in configs:
            try:
                config_index = core.propose_config(change)
            except (NotLeader, ProposalDropped, ConfigChangeRejected) as exc:
                self._out.failed.append((token, exc))
                continue
            if config_index is None:
                self._out.resolved.append((token, None))  # the configuration already is so
            else:
                self._pending[config_index] = _Pending(core.term, token)

    def _feed_reads(self) -> None:
        reads, self._new_reads = self._new_reads, []
        for token in reads:
            self._read_ctx += 1
            try:
                self.core.read_index(self._read_ctx)
            except NotLeader as exc:
                self._out.failed.append((token, exc))
                continue
            self._reads[self._read_ctx] = token

    def _resolve_applied(self, rd: Ready, results: list[Any]) -> None:
        committed = rd.committed
        assert committed[0].index == self.applied_index + 1, (committed[0], self.applied_index)
        assert len(results) == len(committed), "apply returns one result per entry"
        for entry, result in zip(committed, results):
            pending = self._pending.pop(entry.index, None)
            if pending is None:
                continue
            if pending.term == entry.term:
                self._out.resolved.append((pending.token, result))
            else:
                lost = ProposalLost(f"entry {entry.index} was overwritten")
                self._out.failed.append((pending.token, lost))
        self.applied_index = committed[-1].index
        self.stats["entries_applied"] += len(committed)
        self._out.applied = True

    def _on_soft_state(self, soft: SoftState) -> None:
        """After applying: entries committed before a step-down (a leader's own removal) have
        answered their proposers; only what is left has an unknown outcome."""
        self._out.soft_state = soft
        if soft.role is Role.LEADER:
            return
        pending, self._pending = self._pending, {}
        for p in pending.values():
            self._out.failed.append((p.token, LeadershipLost(f"{self.core.id} lost leadership")))
        for peer in list(self.senders):
            self._cancel_stream(peer)

    def _resolve_reads(self) -> None:
        waiting = []
        for index, token in self._reads_ready:
            if index <= self.applied_index:
                self._out.reads_ready.append((token, index))
            else:
                waiting.append((index, token))
        self._reads_ready = waiting

    def _should_snapshot(self) -> bool:
        core = self.core
        if self._snapshot_running or self.storage_blocked:
            return False
        latest = core.latest_snapshot.index if core.latest_snapshot else 0
        base = max(latest, core.log.first_index() - 1)
        interval = self.options.snapshot_interval_entries
        # Most rounds end here, before snapshot_due sorts the configuration: never due this soon.
        if core.log.applied - base < (interval + 1) // 2:
            return False
        if core.log.applied < snapshot_due(base, interval, core):
            return False
        self._snapshot_running = True
        return True

    def _stream_changed(self, sender: ChunkSender) -> None:
        if sender not in self._out.streams:
            self._out.streams.append(sender)
        if sender.result is None or self.senders.get(sender.peer) is not sender:
            return
        del self.senders[sender.peer]
        if sender.result:
            self.stats["snapshots_sent"] += 1
        # Success too (etcd's ReportSnapshot contract): the core then probes the follower from
        # after the snapshot, so one that crashed before installing it gets it again instead of
        # leaving the leader waiting for ever (found by the simulator, seed 608).
        self.core.report_snapshot(sender.peer, sender.result)

    def _cancel_stream(self, peer: NodeId) -> None:
        sender = self.senders.pop(peer)
        sender.cancel()
        if sender not in self._out.streams:
            self._out.streams.append(sender)


def snapshot_due(base: int, interval: int, core: RaftCore) -> int:
    """The applied index at which a node whose last snapshot (or log start) is at ``base`` takes
    the next one: the first point of its own grid at least half an interval past ``base``.

    Each server's grid is shifted by its rank among the configuration's servers, so their
    snapshots fall evenly apart (every ``interval / n`` entries one of them). Taken at the same
    index they stalled together, a leader then heard from no follower and followers from no
    leader, and elections followed (docs/reliability.md, finding 2; docs/raft.md, "Snapshots and
    compaction").
    Points are ``interval`` apart, so snapshots are too, on average; a snapshot installed from
    the leader does not pull a follower onto the leader's grid."""
    ids = sorted(server.id for server in core.config.servers)
    rank = ids.index(core.id) if core.id in ids else 0
    phase = interval * rank // len(ids) if ids else 0
    earliest = base + (interval + 1) // 2
    return -(-(earliest + phase) // interval) * interval - phase
