"""The Trio driver: runs the consensus core against real storage, a real transport and the
caller's state machine.

One task (``_core_loop``) owns the core. Everything else (the transport's receiver, the ticker,
API tasks that propose or read) hands its work over through lists and a wake-up event, so the
loop drains everything that is ready at once: all pending proposals become one batch of entries,
one synced LMDB transaction and one AppendEntries per peer (group commit, DESIGN.md rule 3).

The order of each round is the Ready contract (core/ready.py): the leader's AppendEntries leave
first, then the round's writes are made durable, then acknowledgements and votes leave, then
committed entries are applied and the proposals waiting on them resolved.

Snapshots: every ``snapshot_interval_entries`` applied entries the state machine writes a snapshot
in a worker thread; the log is then compacted up to ``snapshot_trailing_entries`` before it, so a
follower that is only a little behind still catches up from the log. A follower behind the
compacted log receives the snapshot file in chunks (``_SnapshotSender``/``_SnapshotReceiver``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import trio

from raft_zmq.codec import SNAPSHOT_CHUNK_DATA_MAX_BYTES
from raft_zmq.core.configcodec import encode_config
from raft_zmq.core.raft import RaftCore
from raft_zmq.core.ready import (
    ConfigChange,
    ConfigChangeKind,
    ConfigChangeRejected,
    CoreOptions,
    NotLeader,
    ProposalDropped,
    ProposalTooLarge,
    Ready,
    Role,
)
from raft_zmq.core.types import (
    ClusterConfig,
    Entry,
    EntryKind,
    HardState,
    Heartbeat,
    InstallSnapshot,
    Message,
    NodeId,
    Server,
    SnapshotChunk,
    SnapshotChunkReply,
    SnapshotMeta,
    Suffrage,
)
from raft_zmq.faults import FaultSpec
from raft_zmq.snapshot_stream import accept_chunk
from raft_zmq.snapshots import Snapshot, SnapshotStore
from raft_zmq.statemachine import StateMachine
from raft_zmq.storage import RaftStorage
from raft_zmq.transport import Transport, TransportConfig

logger = logging.getLogger(__name__)

RECEIVE_BATCH_MAX_MESSAGES = 4096  # messages taken from the transport per wake-up
PROPOSALS_PER_ROUND_MAX = 4096  # proposals turned into entries per loop round
SNAPSHOT_CHUNK_BYTES = SNAPSHOT_CHUNK_DATA_MAX_BYTES
SNAPSHOT_CHUNK_TIMEOUT_S = 5.0  # a follower that does not acknowledge a chunk in time: give up
SNAPSHOT_KEEP = 2  # snapshot files kept on disk
LEARNED_PEERS_MAX = 16  # return routes learnt from heartbeats of leaders not in our configuration
CATCH_UP_MAX_LAG_ENTRIES = 1000  # a new server is promoted to voter once this close to the leader


class LeadershipLost(Exception):
    """This node stopped being leader before the proposal was applied: its outcome is unknown
    (the entry may still be committed by the next leader). Retry only if that is safe."""


class ProposalLost(Exception):
    """The proposal's entry was overwritten by another leader's: it was not applied."""


class NodeStopped(Exception):
    """The node shut down before the request was answered."""


@attrs.frozen
class NodeConfig:
    node_id: NodeId
    raft_address: str  # "host:port" to bind; port 0 picks a free one
    data_dir: str  # this node's directory (log/, snapshots/ below it)
    advertise_address: str | None = None  # what peers dial, when it differs from the bind
    tick_ms: int = 50
    election_timeout_ticks: int = 20  # 1 s: randomized per election in [1 s, 2 s)
    heartbeat_interval_ticks: int = 2  # 100 ms
    snapshot_interval_entries: int = 50_000
    snapshot_trailing_entries: int = 10_000
    sync: bool = True  # fsync the log; False only for tests that accept losing writes on a crash
    # fsync in a worker thread (other tasks run meanwhile) or in the loop's own thread. Inline
    # wins under load: the round trip through a thread puts the core loop behind every runnable
    # task of the process (docs/benchmarks.md: 2,200-2,500 vs 1,600-1,900 enqueues/s via HTTP).
    persist_in_thread: bool = False
    core: CoreOptions = attrs.field(factory=CoreOptions)
    transport: TransportConfig = attrs.field(factory=TransportConfig)
    faults: FaultSpec | None = None  # faults in force from the start (tests, fault suites)
    faults_file: str | None = None  # a JSON fault spec re-read while running (faults.py)


class _Waiter:
    """A one-shot result for a task waiting on the core loop."""

    __slots__ = ("_error", "_event", "_value")

    def __init__(self) -> None:
        self._event = trio.Event()
        self._value: Any = None
        self._error: BaseException | None = None

    def set(self, value: Any) -> None:
        if not self._event.is_set():
            self._value = value
            self._event.set()

    def fail(self, error: BaseException) -> None:
        if not self._event.is_set():
            self._error = error
            self._event.set()

    async def wait(self) -> Any:
        await self._event.wait()
        if self._error is not None:
            raise self._error
        return self._value


@attrs.define
class _Proposal:
    index: int
    term: int
    waiter: _Waiter


class RaftNode:
    """A Raft node. ``await nursery.start(node.run)`` opens storage and transport and returns
    once the node serves; cancelling the nursery stops it cleanly (storage closed, sockets closed,
    waiters failed with ``NodeStopped``). The state machine stays the caller's to close."""

    def __init__(
        self,
        config: NodeConfig,
        state_machine: StateMachine,
        *,
        bootstrap: ClusterConfig | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.state_machine = state_machine
        self._bootstrap = bootstrap
        self._rng = rng or random.Random()
        self.core: RaftCore | None = None
        self.storage: RaftStorage | None = None
        self.snapshots: SnapshotStore | None = None
        self.transport: Transport | None = None
        self._wake = trio.Event()
        self._inbound: list[Message] = []
        self._ticks = 0
        self._new_proposals: list[tuple[bytes, _Waiter]] = []
        self._new_reads: list[_Waiter] = []
        self._calls: list[Callable[[], None]] = []  # work that needs the core (config, transfer)
        self._proposals: dict[int, _Proposal] = {}
        self._reads: dict[int, _Waiter] = {}
        self._reads_ready: list[tuple[int, _Waiter]] = []  # (index, waiter) awaiting apply
        self._read_ctx = 0
        self._applied_event = trio.Event()
        self._leader_event = trio.Event()
        # What the state machine has applied: the driver's own count, because the core's moves
        # only at advance(), after the waiters of this round have been woken.
        self.applied_index = 0
        self._snapshot_task_running = False
        self._senders: dict[NodeId, _SnapshotSender] = {}
        self._config_peers: dict[NodeId, str] = {}
        self._learned_peers: dict[NodeId, str] = {}
        self._receiver: _SnapshotReceiver | None = None
        self._nursery: trio.Nursery | None = None
        self._stopped = False
        self.stats: dict[str, int] = {
            "rounds": 0,
            "entries_persisted": 0,
            "entries_applied": 0,
            "messages_sent": 0,
            "snapshots_taken": 0,
            "snapshots_sent": 0,
            "snapshots_installed": 0,
        }

    # --- lifecycle -----------------------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        os.makedirs(self.config.data_dir, exist_ok=True)
        self.storage = RaftStorage.open(
            os.path.join(self.config.data_dir, "log"), sync=self.config.sync
        )
        try:
            self.snapshots = SnapshotStore(os.path.join(self.config.data_dir, "snapshots"))
            self._maybe_bootstrap()
            self._recover_state_machine()
            self.core = self._new_core()
            self.applied_index = self.core.log.applied
            transport = Transport(
                self.config.node_id,
                self.config.raft_address,
                config=self.config.transport,
                faults=self.config.faults,
                faults_file=Path(self.config.faults_file) if self.config.faults_file else None,
            )
            self.transport = transport
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                await nursery.start(transport.run)
                nursery.start_soon(self._pump_transport)
                nursery.start_soon(self._ticker)
                self._receiver = _SnapshotReceiver(self)
                if self.core.config.voters == {self.config.node_id}:
                    self.core.campaign()  # a cluster of one need not wait a timeout
                task_status.started()
                await self._core_loop()
        finally:
            self._stopped = True
            self._fail_everything(NodeStopped("the node stopped"))
            self.storage.close()

    @property
    def node_id(self) -> NodeId:
        return self.config.node_id

    @property
    def address(self) -> str:
        """The Raft address peers should dial."""
        if self.config.advertise_address:
            return self.config.advertise_address
        return self.transport.address if self.transport else self.config.raft_address

    def _maybe_bootstrap(self) -> None:
        """A brand-new node given an initial configuration writes it at index 1, term 1 (as
        hashicorp's BootstrapCluster does); every node bootstrapped with the same one agrees."""
        assert self.storage is not None
        if self._bootstrap is None or self.storage.last_index() > 0:
            return
        hard, snapshot = self.storage.initial_state()
        if hard.term or snapshot.index:
            return
        entry = Entry(1, 1, EntryKind.CONFIG, encode_config(self._bootstrap))
        self.storage.save(HardState(term=1), [entry])

    def _recover_state_machine(self) -> None:
        """After a crash between compacting or installing a snapshot and restoring the state
        machine, the state machine may be behind the log's start: restore the snapshot."""
        assert self.storage is not None and self.snapshots is not None
        applied, _ = self.state_machine.last_applied()
        _, log_snapshot = self.storage.initial_state()
        if applied >= log_snapshot.index:
            return
        latest = self.snapshots.latest()
        if latest is None or latest.meta.index < log_snapshot.index:
            raise RuntimeError(
                f"state machine applied {applied} but the log starts after {log_snapshot.index}"
                " and no snapshot covers the gap"
            )
        logger.warning("restoring the state machine from snapshot %s", latest.meta)
        self.state_machine.restore(latest.path)

    def _new_core(self) -> RaftCore:
        assert self.storage is not None and self.snapshots is not None
        hard, snapshot = self.storage.initial_state()
        applied, _ = self.state_machine.last_applied()
        if applied > self.storage.last_index():
            raise RuntimeError(
                f"state machine applied {applied} beyond the log's last index "
                f"{self.storage.last_index()}: the log lost durable writes"
            )
        options = attrs.evolve(
            self.config.core,
            election_timeout_ticks=self.config.election_timeout_ticks,
            heartbeat_interval_ticks=self.config.heartbeat_interval_ticks,
        )
        core = RaftCore(
            self.config.node_id,
            self.storage,
            hard,
            snapshot,
            rng=self._rng,
            options=options,
            applied=applied,
        )
        latest = self.snapshots.latest()
        if latest is not None and latest.meta.index <= core.log.applied:
            core.set_snapshot(latest.meta)
        return core

    def _fail_everything(self, error: BaseException) -> None:
        for proposal in self._proposals.values():
            proposal.waiter.fail(error)
        self._proposals.clear()
        for _, waiter in self._new_proposals:
            waiter.fail(error)
        self._new_proposals.clear()
        for waiter in [*self._reads.values(), *self._new_reads]:
            waiter.fail(error)
        for _, waiter in self._reads_ready:
            waiter.fail(error)
        self._reads.clear()
        self._new_reads.clear()
        self._reads_ready.clear()
        self._applied_event.set()
        self._leader_event.set()

    # --- the public API ------------------------------------------------------------------------
    async def propose(self, data: bytes) -> Any:
        """Replicate ``data`` and return the state machine's result for it. Raises NotLeader (with
        the leader's ID) at once on a follower; ProposalDropped when the leader refuses for now;
        LeadershipLost when leadership is lost before the entry is applied (outcome unknown)."""
        self._check_running()
        core = self.core
        assert core is not None
        if core.role is not Role.LEADER:
            raise NotLeader(core.leader)
        if len(data) > core.options.max_entry_bytes:
            raise ProposalTooLarge(f"{len(data)} B exceeds {core.options.max_entry_bytes} B")
        waiter = _Waiter()
        self._new_proposals.append((data, waiter))
        self._wake.set()
        return await waiter.wait()

    async def read_barrier(self) -> int:
        """Return once this node's state machine reflects every write committed before the call
        (ReadIndex: leadership confirmed by a majority, then applied up to the read index); the
        caller then reads its state machine. Returns the read index. NotLeader on a follower."""
        self._check_running()
        assert self.core is not None
        if self.core.role is not Role.LEADER:
            raise NotLeader(self.core.leader)
        waiter = _Waiter()
        self._new_reads.append(waiter)
        self._wake.set()
        return await waiter.wait()

    async def change_config(self, change: ConfigChange, *, retry_interval_s: float = 0.05) -> None:
        """Apply a single-server membership change through the log and return once it is
        committed. While the leader cannot take a change yet (its no-op or a previous change is
        not committed) it retries; cancel (e.g. with a deadline) to stop waiting."""
        while True:
            self._check_running()
            applied = _Waiter()

            def propose(change: ConfigChange = change, applied: _Waiter = applied) -> None:
                # Registered in the same call: a cluster of one may apply it before we resume.
                core = self.core
                assert core is not None
                index = core.propose_config(change)
                if index is None:
                    applied.set(None)  # the configuration already is as asked
                else:
                    self._proposals[index] = _Proposal(index, core.term, applied)

            try:
                await self._in_loop(propose)
                await applied.wait()
                return
            except ProposalDropped:
                await trio.sleep(retry_interval_s)

    async def add_voter(
        self, node_id: NodeId, address: str, metadata: str = "", *, poll_interval_s: float = 0.05
    ) -> None:
        """Add a server safely: first as a non-voter, which receives the log without counting
        toward any majority, then, once it has caught up, promote it to voter (what hashicorp's
        autopilot does). A voter added empty would make the cluster wait on it. Idempotent; for
        an existing member it updates the address and metadata."""
        existing = self.server(node_id)
        if existing is None or existing.suffrage != Suffrage.VOTER:
            await self.change_config(
                ConfigChange(ConfigChangeKind.ADD_NONVOTER, node_id, address, metadata)
            )
            assert self.core is not None
            floor = self.core.log.committed  # at least the entry that added it
            while not self._caught_up(node_id, floor):
                await trio.sleep(poll_interval_s)
        await self.change_config(
            ConfigChange(ConfigChangeKind.ADD_VOTER, node_id, address, metadata)
        )

    def _caught_up(self, node_id: NodeId, floor: int) -> bool:
        """The server holds ``floor`` and trails the leader by at most a bounded lag."""
        core = self.core
        assert core is not None
        if core.role is not Role.LEADER:
            raise NotLeader(core.leader)
        progress = core.status()["progress"].get(node_id)  # type: ignore[union-attr]
        if progress is None:
            raise ConfigChangeRejected(f"{node_id} left the configuration while catching up")
        match = progress["match"]
        return match >= floor and core.log.last_index() - match <= CATCH_UP_MAX_LAG_ENTRIES

    async def remove_server(self, node_id: NodeId) -> None:
        """Remove a server through the log; returns once the change is committed."""
        await self.change_config(ConfigChange(ConfigChangeKind.REMOVE, node_id))

    async def transfer_leadership(self, target: NodeId) -> None:
        """Ask the leader (this node) to hand over to ``target``; returns once asked."""
        await self._in_loop(lambda: self.core.transfer_leadership(target))  # type: ignore[union-attr]

    async def wait_leader(self) -> NodeId:
        """Wait until this node knows a leader (itself or another)."""
        while True:
            self._check_running()
            assert self.core is not None
            if self.core.leader is not None:
                return self.core.leader
            await self._leader_event.wait()

    async def wait_role_change(self) -> None:
        """Until this node's role, term or known leader next changes (what a request held on
        the leader waits on besides its own event, so that it never outlives the leadership)."""
        self._check_running()
        await self._leader_event.wait()

    async def wait_applied(self, index: int) -> None:
        """Wait until the state machine has applied ``index``."""
        while True:
            self._check_running()
            assert self.core is not None
            if self.applied_index >= index:
                return
            await self._applied_event.wait()

    @property
    def is_leader(self) -> bool:
        return self.core is not None and self.core.role is Role.LEADER

    @property
    def leader_id(self) -> NodeId | None:
        return self.core.leader if self.core is not None else None

    def server(self, node_id: NodeId) -> Server | None:
        return self.core.config.get(node_id) if self.core is not None else None

    def status(self) -> dict[str, Any]:
        assert self.core is not None
        status = self.core.status()
        status["log_entries"] = self.core.log.last_index() - self.core.log.first_index() + 1
        status["config"] = [attrs.asdict(s) for s in self.core.config.servers]
        status["stats"] = dict(self.stats)
        status["dropped"] = dict(self.core.dropped)
        return status

    def _check_running(self) -> None:
        if self._stopped or self.core is None:
            raise NodeStopped("the node is not running")

    # --- input tasks ---------------------------------------------------------------------------
    async def _pump_transport(self) -> None:
        assert self.transport is not None
        while True:
            try:
                batch = await self.transport.receive_batch(RECEIVE_BATCH_MAX_MESSAGES)
            except (trio.EndOfChannel, trio.ClosedResourceError):
                return
            self._inbound.extend(batch)
            self._wake.set()

    async def _ticker(self) -> None:
        interval_s = self.config.tick_ms / 1000
        next_tick = trio.current_time() + interval_s
        while True:
            await trio.sleep_until(next_tick)
            # A loop round that overran several ticks counts them all (elections must not slow
            # down), but never catches up more than one election timeout's worth.
            now = trio.current_time()
            missed = min(math.floor((now - next_tick) / interval_s) + 1, 1000)
            self._ticks += missed
            next_tick += missed * interval_s
            self._wake.set()

    # --- the core loop -------------------------------------------------------------------------
    async def _core_loop(self) -> None:
        core = self.core
        assert core is not None
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            self._feed_core()
            while core.has_ready():
                rd = core.ready()
                await self._handle_ready(rd)
                core.advance(rd)
                self.stats["rounds"] += 1
            self._resolve_reads()

    def _feed_core(self) -> None:
        core = self.core
        assert core is not None
        inbound, self._inbound = self._inbound, []
        for msg in inbound:
            if isinstance(msg, SnapshotChunk):
                assert self._receiver is not None
                self._receiver.on_chunk(msg)
            elif isinstance(msg, SnapshotChunkReply):
                sender = self._senders.get(msg.sender)
                if sender is not None:
                    sender.on_reply(msg)
            else:
                if isinstance(msg, Heartbeat) and msg.leader_address:
                    self._learn_route(msg.sender, msg.leader_address)
                core.step(msg)
        # Ticks after the messages: a loop that stalled must not let check-quorum judge the
        # followers before reading the answers that arrived meanwhile.
        ticks, self._ticks = self._ticks, 0
        for _ in range(ticks):
            core.tick()
        calls, self._calls = self._calls, []
        for call in calls:
            call()
        self._feed_proposals(core)
        self._feed_reads(core)

    def _feed_proposals(self, core: RaftCore) -> None:
        proposals = self._new_proposals[:PROPOSALS_PER_ROUND_MAX]
        del self._new_proposals[:PROPOSALS_PER_ROUND_MAX]
        if self._new_proposals:
            self._wake.set()  # more than one round's worth: come back at once
        for data, waiter in proposals:
            try:
                index = core.propose(data)
            except (NotLeader, ProposalDropped) as exc:
                waiter.fail(exc)
                continue
            self._proposals[index] = _Proposal(index, core.term, waiter)

    def _feed_reads(self, core: RaftCore) -> None:
        reads, self._new_reads = self._new_reads, []
        for waiter in reads:
            self._read_ctx += 1
            try:
                core.read_index(self._read_ctx)
            except NotLeader as exc:
                waiter.fail(exc)
                continue
            self._reads[self._read_ctx] = waiter

    async def _handle_ready(self, rd: Ready) -> None:
        if rd.config is not None:
            self._on_config(rd.config)
        self._send(rd.early_messages)
        await self._persist(rd)
        self._send(rd.messages)
        if rd.committed:
            await self._apply(rd.committed)
        if rd.soft_state is not None:
            # After applying: entries committed before a step-down (a leader's own removal)
            # answer their proposers; only what is left has an unknown outcome.
            self._on_soft_state(rd)
        for state in rd.read_states:
            waiter = self._reads.pop(state.ctx, None)
            if waiter is not None:
                self._reads_ready.append((state.index, waiter))
        for ctx in rd.failed_reads:
            waiter = self._reads.pop(ctx, None)
            if waiter is not None:
                waiter.fail(NotLeader(self.core.leader if self.core else None))

    def _on_soft_state(self, rd: Ready) -> None:
        soft = rd.soft_state
        assert soft is not None
        logger.info(
            "%s: %s in term %d (leader %s)", self.node_id, soft.role.value, soft.term, soft.leader
        )
        if soft.role is not Role.LEADER and self._proposals:
            error = LeadershipLost(f"{self.node_id} is no longer the leader")
            for proposal in self._proposals.values():
                proposal.waiter.fail(error)
            self._proposals.clear()
        if soft.role is not Role.LEADER:
            senders, self._senders = self._senders, {}
            for sender in senders.values():
                sender.cancel()
        self._leader_event.set()  # wake the waiters; they look again
        self._leader_event = trio.Event()

    def _on_config(self, config: ClusterConfig) -> None:
        old, self._config_peers = (
            self._config_peers,
            {s.id: s.address for s in config.servers if s.id != self.node_id},
        )
        for peer in list(self._learned_peers):
            if peer in self._config_peers:
                del self._learned_peers[peer]
        for peer, address in old.items():
            # A server that left (a leader removing itself is still leading until the removal
            # commits) stays reachable for a while rather than losing its answers.
            if peer not in self._config_peers:
                self._remember_route(peer, address)
        self._set_transport_peers()
        for peer in list(self._senders):
            if peer not in self._config_peers:
                self._senders.pop(peer).cancel()

    def _learn_route(self, leader: NodeId, address: str) -> None:
        """A server not yet in its own configuration (joining, empty log) learns where its
        leader listens from the leader's heartbeats, so that its answers reach it."""
        if leader in self._config_peers or self._learned_peers.get(leader) == address:
            return
        self._remember_route(leader, address)
        self._set_transport_peers()

    def _remember_route(self, peer: NodeId, address: str) -> None:
        self._learned_peers.pop(peer, None)
        self._learned_peers[peer] = address
        while len(self._learned_peers) > LEARNED_PEERS_MAX:
            del self._learned_peers[next(iter(self._learned_peers))]

    def _set_transport_peers(self) -> None:
        assert self.transport is not None
        peers = {**self._learned_peers, **self._config_peers}
        try:
            self.transport.set_peers(peers)
        except ValueError:
            logger.exception("%s: unusable peer addresses: %s", self.node_id, peers)

    def _send(self, messages: tuple[Message, ...]) -> None:
        transport = self.transport
        assert transport is not None
        for msg in messages:
            if isinstance(msg, InstallSnapshot):
                self._start_snapshot_send(msg)
                continue
            transport.send_nowait(msg)
        self.stats["messages_sent"] += len(messages)

    async def _persist(self, rd: Ready) -> None:
        storage = self.storage
        assert storage is not None
        if rd.snapshot is not None:
            await self._install_snapshot(rd.snapshot)
        if rd.hard_state is None and not rd.entries:
            return
        if self.config.persist_in_thread and rd.entries:
            await trio.to_thread.run_sync(storage.save, rd.hard_state, rd.entries)
        else:
            storage.save(rd.hard_state, rd.entries)
        self.stats["entries_persisted"] += len(rd.entries)

    async def _apply(self, entries: tuple[Entry, ...]) -> None:
        assert entries[0].index == self.applied_index + 1, (entries[0].index, self.applied_index)
        results = self.state_machine.apply(entries)
        assert len(results) == len(entries), "apply returns one result per entry"
        for entry, result in zip(entries, results):
            proposal = self._proposals.pop(entry.index, None)
            if proposal is None:
                continue
            if proposal.term == entry.term:
                proposal.waiter.set(result)
            else:
                proposal.waiter.fail(ProposalLost(f"entry {entry.index} was overwritten"))
        self.stats["entries_applied"] += len(entries)
        self.applied_index = entries[-1].index
        self._applied_event.set()
        self._applied_event = trio.Event()
        self._maybe_snapshot()
        await trio.lowlevel.checkpoint()

    def _resolve_reads(self) -> None:
        if not self._reads_ready:
            return
        applied = self.applied_index
        waiting = []
        for index, waiter in self._reads_ready:
            if index <= applied:
                waiter.set(index)
            else:
                waiting.append((index, waiter))
        self._reads_ready = waiting

    # --- snapshots -----------------------------------------------------------------------------
    def _maybe_snapshot(self) -> None:
        core = self.core
        assert core is not None and self._nursery is not None
        latest = core.latest_snapshot.index if core.latest_snapshot else 0
        if self._snapshot_task_running:
            return
        if core.log.applied - max(latest, core.log.first_index() - 1) < (
            self.config.snapshot_interval_entries
        ):
            return
        self._snapshot_task_running = True
        self._nursery.start_soon(self._take_snapshot)

    async def _take_snapshot(self) -> None:
        """Write a snapshot in a worker thread, then compact the log behind it. Changes to the
        core and to the log's bounds happen in the core loop, between rounds (``_in_loop``)."""
        assert self.snapshots is not None and self.core is not None and self.storage is not None
        store, core, storage = self.snapshots, self.core, self.storage
        try:
            tmp = store.new_temp_path()
            try:
                index, _term = await trio.to_thread.run_sync(self.state_machine.snapshot, tmp)
                meta = core.snapshot_meta(index)  # reads only; safe while a round is in progress
                snapshot = await trio.to_thread.run_sync(store.finalize, tmp, meta)
            except BaseException:
                store.discard_temp(tmp)
                raise
            await self._in_loop(lambda: core.set_snapshot(snapshot.meta))
            compact_to = index - self.config.snapshot_trailing_entries
            if compact_to > storage.first_index() - 1:
                compact_meta = core.snapshot_meta(compact_to)

                def compact() -> None:
                    # Only the bounds move here (one small transaction, between rounds, so the
                    # core never sees the log shrink mid-round); the entries below them are
                    # deleted in a worker thread afterwards.
                    storage.compact(compact_meta, delete_now=False)
                    core.log_compacted()

                await self._in_loop(compact)
                await trio.to_thread.run_sync(storage.delete_garbage)
            store.prune(keep=SNAPSHOT_KEEP)
            self.stats["snapshots_taken"] += 1
            logger.info("%s: snapshot at %d, log from %d", self.node_id, index, compact_to + 1)
        finally:
            self._snapshot_task_running = False

    async def _in_loop(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` in the core loop between rounds (no Ready outstanding) and wait for it; an
        exception it raises is raised here."""
        done = _Waiter()

        def call() -> None:
            try:
                fn()
                done.set(None)
            except Exception as exc:
                done.fail(exc)

        self._calls.append(call)
        self._wake.set()
        await done.wait()

    def _start_snapshot_send(self, msg: InstallSnapshot) -> None:
        assert self.snapshots is not None and self._nursery is not None
        snapshot = self.snapshots.find(msg.meta.index, msg.meta.term)
        if snapshot is None:
            logger.error("%s: no snapshot file for %s", self.node_id, msg.meta)
            self._calls.append(lambda: self.core.report_snapshot(msg.to, False))  # type: ignore[union-attr]
            return
        running = self._senders.get(msg.to)
        if running is not None and running.msg.meta == msg.meta:
            return  # already streaming this one
        sender = _SnapshotSender(self, msg, snapshot)
        self._senders[msg.to] = sender
        if running is not None:
            # The core moved on to a newer snapshot while an older stream was still going:
            # stream the new one (found by the simulator: ignoring it left the core waiting).
            running.cancel()
        self._nursery.start_soon(sender.run)

    def _snapshot_send_done(self, peer: NodeId, sender: _SnapshotSender, ok: bool) -> None:
        if self._senders.get(peer) is not sender:
            return  # replaced by a newer stream or cancelled: its outcome no longer matters
        del self._senders[peer]
        if ok:
            self.stats["snapshots_sent"] += 1
        if not self._stopped:
            # Success too (etcd's ReportSnapshot contract): the core then probes the follower
            # from after the snapshot, so one that crashed before installing it gets it again
            # instead of leaving the leader waiting for ever (found by the simulator, seed 608).
            self._calls.append(lambda: self.core.report_snapshot(peer, ok))  # type: ignore[union-attr]
            self._wake.set()

    async def _install_snapshot(self, meta: SnapshotMeta) -> None:
        """A received snapshot the core accepted: make the log start after it, then restore the
        state machine from it (a crash between the two is repaired at start)."""
        assert self.snapshots is not None and self.storage is not None and self.core is not None
        snapshot = self.snapshots.find(meta.index, meta.term)
        assert snapshot is not None, f"the core accepted a snapshot {meta} that was not staged"
        await trio.to_thread.run_sync(self.storage.install_snapshot, meta)
        index, term = await trio.to_thread.run_sync(self.state_machine.restore, snapshot.path)
        assert (index, term) == (meta.index, meta.term), ((index, term), meta)
        self.applied_index = index
        self.snapshots.prune(keep=SNAPSHOT_KEEP)
        self.stats["snapshots_installed"] += 1

    # --- helpers for the snapshot streams -----------------------------------------------------
    def _deliver_to_core(self, msg: Message) -> None:
        self._calls.append(lambda: self.core.step(msg))  # type: ignore[union-attr]
        self._wake.set()

    def _send_now(self, msg: Message) -> None:
        if self.transport is not None and not self._stopped:
            self.transport.send_nowait(msg)


class _SnapshotSender:
    """Leader side: streams one snapshot file to one follower, a chunk at a time, each waiting
    for its acknowledgement (a bounded window of one chunk keeps memory flat)."""

    def __init__(self, node: RaftNode, msg: InstallSnapshot, snapshot: Snapshot) -> None:
        self.node = node
        self.msg = msg
        self.snapshot = snapshot
        self._reply: trio.MemorySendChannel[SnapshotChunkReply]
        self._reply, self._replies = trio.open_memory_channel[SnapshotChunkReply](16)
        self._cancel = trio.CancelScope()

    def on_reply(self, reply: SnapshotChunkReply) -> None:
        if reply.snapshot_index == self.msg.meta.index:
            # A flood of duplicate replies may overflow; the chunk's wait then times out and the
            # leader retries the snapshot.
            with contextlib.suppress(trio.WouldBlock):
                self._reply.send_nowait(reply)

    def cancel(self) -> None:
        self._cancel.cancel()

    async def run(self) -> None:
        ok = False
        store = self.node.snapshots
        assert store is not None
        with self._cancel:
            try:
                with store.open(self.snapshot) as reader:
                    ok = await self._stream(reader)
            except OSError:
                logger.exception("%s: reading snapshot %s", self.node.node_id, self.snapshot.path)
        self.node._snapshot_send_done(self.msg.to, self, ok)

    async def _stream(self, reader: Any) -> bool:
        msg, total = self.msg, self.snapshot.size_bytes
        offset = 0
        while True:
            data = await trio.to_thread.run_sync(reader.read_at, offset, SNAPSHOT_CHUNK_BYTES)
            done = offset + len(data) >= total
            chunk = SnapshotChunk(msg.term, msg.sender, msg.to, msg.meta, offset, total, data, done)
            if not await self._send_and_wait(chunk):
                return False
            if done:
                return True
            offset += len(data)

    async def _send_and_wait(self, chunk: SnapshotChunk) -> bool:
        """Send one chunk and wait for the follower to acknowledge every byte of it."""
        with trio.move_on_after(SNAPSHOT_CHUNK_TIMEOUT_S):
            self.node._send_now(chunk)
            while True:
                reply = await self._replies.receive()
                if not reply.ok:
                    return False
                if reply.offset >= chunk.offset + len(chunk.data):
                    return True
        return False  # no acknowledgement in time


class _SnapshotReceiver:
    """Follower side: stages chunks into the snapshot store (raft_zmq/snapshot_stream.py); once
    complete, hands the core the InstallSnapshot message that the leader's core emitted."""

    def __init__(self, node: RaftNode) -> None:
        self.node = node

    def on_chunk(self, chunk: SnapshotChunk) -> None:
        node = self.node
        assert node.snapshots is not None and node.core is not None
        reply, install = accept_chunk(node.snapshots, chunk, node.core.term, node.node_id)
        node._send_now(reply)
        if install is not None:
            node._deliver_to_core(install)
