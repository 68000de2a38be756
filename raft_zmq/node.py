"""The Trio shell around the driver: runs the consensus core against real storage, a real
transport and the caller's state machine.

What to feed the core, what each Ready resolves, when to snapshot and the snapshot streams'
bookkeeping live in the sans-I/O driver (raft_zmq/driver/), which the simulator runs too. This
module does the I/O around it: one task (``_core_loop``) owns the driver and the core; the
transport's receiver, the ticker and the API's tasks hand their work to the driver and set a
wake-up event, so each round takes everything that is ready at once: all pending proposals
become one batch of entries, one synced LMDB transaction and one AppendEntries per peer (group
commit, docs/design.md).

The order of each round is the Ready contract (core/ready.py): the leader's AppendEntries leave
first, then the round's writes are made durable, then acknowledgements and votes leave, then
committed entries are applied and the driver resolves the proposals and reads waiting on them.

A store without room (``StorageFull``, raft_zmq/statemachine.py) does not crash the node: the
round stays open and the same write or apply is tried again every
``STORAGE_FULL_RETRY_INTERVAL_MS`` until it succeeds; meanwhile ``storage_blocked`` is true and
inbound traffic is bounded (docs/raft.md, "When the disk is full").
"""

from __future__ import annotations

import logging
import math
import os
import random
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import attrs
import trio

from raft_zmq.core.configcodec import encode_config
from raft_zmq.core.raft import RaftCore
from raft_zmq.core.ready import (
    ConfigChange,
    ConfigChangeKind,
    ConfigChangeRejected,
    CoreOptions,
    NotLeader,
    ProposalDropped,
    Ready,
    Role,
)
from raft_zmq.core.types import (
    ClusterConfig,
    Entry,
    EntryKind,
    HardState,
    InstallSnapshot,
    Message,
    NodeId,
    Server,
    SnapshotChunk,
    SnapshotMeta,
    Suffrage,
)
from raft_zmq.curve import ClusterKey
from raft_zmq.driver import ChunkSender, Driver, DriverOptions, Outcomes, Round
from raft_zmq.driver.errors import LeadershipLost, ProposalLost
from raft_zmq.driver.limits import SNAPSHOT_KEEP, STORAGE_FULL_RETRY_INTERVAL_MS
from raft_zmq.faults import FaultSpec
from raft_zmq.recovery import recover_state_machine, streamable_snapshot
from raft_zmq.snapshot_stream import accept_chunk
from raft_zmq.snapshot_writer import write_snapshot
from raft_zmq.snapshots import Snapshot, SnapshotStore
from raft_zmq.statemachine import StateMachine, StorageFull
from raft_zmq.storage import RaftStorage
from raft_zmq.transport import Transport, TransportConfig

__all__ = ["LeadershipLost", "NodeConfig", "NodeStopped", "ProposalLost", "RaftNode"]

logger = logging.getLogger(__name__)

CATCH_UP_LAG_ENTRIES_MAX = 1000  # a new server is promoted to voter once this close to the leader

R = TypeVar("R")


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
    # With a key, peer links are CURVE-authenticated and encrypted (raft_zmq/curve.py); every
    # member must hold the same key.
    cluster_key: ClusterKey | None = None


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
        self.driver: Driver[_Waiter] | None = None
        self.storage: RaftStorage | None = None
        self.snapshots: SnapshotStore | None = None
        self.transport: Transport | None = None
        self._wake = trio.Event()
        self._loop_waiters: set[_Waiter] = set()  # callers of _in_loop, failed if we stop
        self._streams: dict[ChunkSender, trio.Event] = {}  # running snapshot streams
        self._applied_event = trio.Event()
        self._leader_event = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._stopped = False
        self._shell_stats: dict[str, int] = {
            "entries_persisted": 0,
            "messages_sent": 0,
            "storage_full_retries": 0,
            "snapshots_superseded": 0,
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
            _, log_snapshot = self.storage.initial_state()
            recover_state_machine(
                self.state_machine, self.snapshots, log_snapshot, log_term=self._log_term
            )
            self.core = self._new_core()
            self.driver = Driver(self.core, self._driver_options())
            transport = Transport(
                self.config.node_id,
                self.config.raft_address,
                config=self.config.transport,
                faults=self.config.faults,
                faults_file=Path(self.config.faults_file) if self.config.faults_file else None,
                cluster_key=self.config.cluster_key,
            )
            self.transport = transport
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                await nursery.start(transport.run)
                nursery.start_soon(self._pump_transport)
                nursery.start_soon(self._ticker)
                if self.core.config.voters == {self.config.node_id}:
                    self.core.campaign()  # a cluster of one need not wait a timeout
                task_status.started()
                await self._core_loop()
        finally:
            self._stopped = True
            self._fail_everything(NodeStopped("the node stopped"))
            self.storage.close()

    def _log_term(self, index: int) -> int | None:
        assert self.storage is not None
        try:
            return self.storage.term(index)
        except IndexError:
            return None

    def _driver_options(self) -> DriverOptions:
        return DriverOptions(
            snapshot_interval_entries=self.config.snapshot_interval_entries,
            snapshot_trailing_entries=self.config.snapshot_trailing_entries,
        )

    @property
    def node_id(self) -> NodeId:
        return self.config.node_id

    @property
    def address(self) -> str:
        """The Raft address peers should dial."""
        if self.config.advertise_address:
            return self.config.advertise_address
        return self.transport.address if self.transport else self.config.raft_address

    @property
    def applied_index(self) -> int:
        """What the state machine has applied (the driver's count: the core's moves only at
        advance(), after the waiters of its round have been woken)."""
        return self.driver.applied_index if self.driver is not None else 0

    @property
    def storage_blocked(self) -> bool:
        """A write or an apply is waiting for room (StorageFull); it resumes by itself."""
        return self.driver is not None and self.driver.storage_blocked

    @property
    def stats(self) -> dict[str, int]:
        driver_stats = self.driver.stats if self.driver is not None else {}
        return {**driver_stats, **self._shell_stats}

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
        streamable = streamable_snapshot(self.snapshots, core.log.applied, core.log.first_index())
        if streamable is not None:
            core.set_snapshot(streamable)
        return core

    def _fail_everything(self, error: BaseException) -> None:
        tokens = self.driver.fail_all() if self.driver is not None else []
        for waiter in [*tokens, *self._loop_waiters]:
            waiter.fail(error)
        self._loop_waiters.clear()
        for event in self._streams.values():
            event.set()
        self._applied_event.set()
        self._leader_event.set()

    # --- the public API ------------------------------------------------------------------------
    async def propose(self, data: bytes) -> Any:
        """Replicate ``data`` and return the state machine's result for it. Raises NotLeader (with
        the leader's ID) at once on a follower; ProposalDropped when the leader refuses for now;
        LeadershipLost when leadership is lost before the entry is applied (outcome unknown)."""
        driver = self._running_driver()
        waiter = _Waiter()
        driver.propose(data, waiter)  # NotLeader, ProposalTooLarge at once
        self._wake.set()
        return await waiter.wait()

    async def read_barrier(self) -> int:
        """Return once this node's state machine reflects every write committed before the call
        (ReadIndex: leadership confirmed by a majority, then applied up to the read index); the
        caller then reads its state machine. Returns the read index. NotLeader on a follower."""
        driver = self._running_driver()
        waiter = _Waiter()
        driver.read(waiter)  # NotLeader at once
        self._wake.set()
        return await waiter.wait()

    async def change_config(self, change: ConfigChange, *, retry_interval_s: float = 0.05) -> None:
        """Apply a single-server membership change through the log and return once it is
        committed. While the leader cannot take a change yet (its no-op or a previous change is
        not committed) it retries; cancel (e.g. with a deadline) to stop waiting."""
        while True:
            driver = self._running_driver()
            applied = _Waiter()
            driver.propose_config(change, applied)
            self._wake.set()
            try:
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
        return match >= floor and core.log.last_index() - match <= CATCH_UP_LAG_ENTRIES_MAX

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
        status["storage_blocked"] = self.storage_blocked
        return status

    def _check_running(self) -> None:
        if self._stopped or self.core is None:
            raise NodeStopped("the node is not running")

    def _running_driver(self) -> Driver[_Waiter]:
        self._check_running()
        assert self.driver is not None
        return self.driver

    # --- input tasks ---------------------------------------------------------------------------
    async def _pump_transport(self) -> None:
        assert self.transport is not None and self.driver is not None
        batch_max = self.config.transport.receive_batch_max_messages
        while True:
            try:
                batch = await self.transport.receive_batch(batch_max)
            except (trio.EndOfChannel, trio.ClosedResourceError):
                return
            self.driver.receive(batch)
            self._wake.set()

    async def _ticker(self) -> None:
        assert self.driver is not None and self.transport is not None
        interval_s = self.config.tick_ms / 1000
        batch_max = self.config.transport.receive_batch_max_messages
        next_tick = trio.current_time() + interval_s
        while True:
            await trio.sleep_until(next_tick)
            # A loop round that overran several ticks counts them all (elections must not slow
            # down); the driver keeps at most MISSED_TICKS_MAX of them (driver/limits.py). But
            # first what the peers said meanwhile, still in the transport: the driver steps
            # messages before ticks, so a stalled leader reads its followers' answers before
            # check-quorum judges them, and a follower its leader's heartbeat before its
            # election timer runs out (docs/raft.md, "Stalls").
            now = trio.current_time()
            missed = math.floor((now - next_tick) / interval_s) + 1
            waiting = self.transport.take_waiting(batch_max)
            if waiting:
                self.driver.receive(waiting)
            self.driver.tick(missed)
            next_tick += missed * interval_s
            self._wake.set()

    @staticmethod
    def _now_ms() -> int:
        return int(trio.current_time() * 1000)

    # --- the core loop -------------------------------------------------------------------------
    async def _core_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            await self._rounds()

    async def _rounds(self) -> None:
        """Feed, then run Ready rounds until neither the core nor the inputs have work."""
        driver = self.driver
        assert driver is not None
        while True:
            self._on_outcomes(driver.feed(self._now_ms()))
            rnd = driver.next_ready()
            if rnd is None:
                if driver.has_input():
                    continue  # proposals beyond one round's cap, or a staged snapshot
                return
            results = await self._handle_round(rnd)
            self._on_outcomes(driver.finish(rnd, results))
            if rnd.ready.committed:
                # Yield once per applied round, after its waiters are woken (not before, which
                # made every answer wait for a whole batch of other tasks first).
                await trio.lowlevel.checkpoint()

    async def _handle_round(self, rnd: Round) -> list[Any]:
        if rnd.routes is not None:
            self._set_transport_peers(rnd.routes)
        self._send(rnd.early)
        self._start_streams(rnd.snapshot_sends)
        await self._persist(rnd.ready)
        self._send(rnd.late)
        if not rnd.ready.committed:
            return []
        entries = rnd.ready.committed
        return await self._storage_retry(lambda: self._apply_now(entries))

    async def _apply_now(self, entries: tuple[Entry, ...]) -> list[Any]:
        return self.state_machine.apply(entries)

    def _on_outcomes(self, out: Outcomes[_Waiter]) -> None:
        for token, result in out.resolved:
            token.set(result)
        for token, error in out.failed:
            token.fail(error)
        for token, index in out.reads_ready:
            token.set(index)
        for chunk in out.chunks:
            self._stage_chunk(chunk)
        for sender in out.streams:
            event = self._streams.get(sender)
            if event is not None:
                event.set()
        if out.routes is not None:
            self._set_transport_peers(out.routes)
        if out.soft_state is not None:
            soft = out.soft_state
            logger.info(
                "%s: %s in term %d (leader %s)",
                self.node_id,
                soft.role.value,
                soft.term,
                soft.leader,
            )
            self._leader_event.set()  # wake the waiters; they look again
            self._leader_event = trio.Event()
        if out.applied:
            self._applied_event.set()
            self._applied_event = trio.Event()
        if out.take_snapshot:
            assert self._nursery is not None
            self._nursery.start_soon(self._take_snapshot)

    def _set_transport_peers(self, peers: dict[NodeId, str]) -> None:
        assert self.transport is not None
        try:
            self.transport.set_peers(peers)
        except ValueError:
            logger.exception("%s: unusable peer addresses: %s", self.node_id, peers)

    def _send(self, messages: tuple[Message, ...]) -> None:
        transport = self.transport
        assert transport is not None
        for msg in messages:
            transport.send_nowait(msg)
        self._shell_stats["messages_sent"] += len(messages)

    def _send_now(self, msg: Message) -> None:
        if self.transport is not None and not self._stopped:
            self.transport.send_nowait(msg)

    async def _persist(self, rd: Ready) -> None:
        storage = self.storage
        assert storage is not None
        if rd.snapshot is not None:
            await self._install_snapshot(rd.snapshot)
        if rd.hard_state is None and not rd.entries:
            return
        hard, entries = rd.hard_state, rd.entries

        async def save() -> None:
            if self.config.persist_in_thread and entries:
                await trio.to_thread.run_sync(storage.save, hard, entries)
            else:
                storage.save(hard, entries)

        await self._storage_retry(save)
        self._shell_stats["entries_persisted"] += len(rd.entries)

    async def _storage_retry(self, attempt: Callable[[], Awaitable[R]]) -> R:
        """Run ``attempt`` until it does not raise StorageFull. Nothing of a failed attempt took
        effect (StorageFull's contract), so the same work is simply tried again; the round stays
        open meanwhile and the node is flagged as blocked on storage."""
        driver = self.driver
        assert driver is not None
        while True:
            try:
                result = await attempt()
            except StorageFull as exc:
                if not driver.storage_blocked:
                    logger.error("%s: storage full, retrying: %s", self.node_id, exc)
                driver.storage_blocked = True
                self._shell_stats["storage_full_retries"] += 1
                await trio.sleep(STORAGE_FULL_RETRY_INTERVAL_MS / 1000)
                continue
            if driver.storage_blocked:
                logger.warning("%s: storage has room again; resuming", self.node_id)
                driver.storage_blocked = False
            return result

    # --- snapshots -----------------------------------------------------------------------------
    async def _take_snapshot(self) -> None:
        """Write a snapshot (in a process of its own when the state machine offers one, else in a
        worker thread: raft_zmq/snapshot_writer.py), then compact the log behind it. What the core
        knows is read and changed only in the loop, between rounds (``_in_loop``): a snapshot
        received from the leader may be installed while ours is being written, and then ours is
        superseded and discarded. No failure here may end the node."""
        driver, store, storage = self.driver, self.snapshots, self.storage
        assert driver is not None and store is not None and storage is not None
        taken = False
        try:
            tmp = store.new_temp_path()
            try:
                index, _term = await write_snapshot(self.state_machine, tmp)
                meta = await self._in_loop(lambda: driver.snapshot_written(index))
                if meta is None:
                    logger.info("%s: snapshot at %d superseded; discarded", self.node_id, index)
                    self._shell_stats["snapshots_superseded"] += 1
                    store.discard_temp(tmp)
                    return
                snapshot = await trio.to_thread.run_sync(store.finalize, tmp, meta)
            except BaseException:
                store.discard_temp(tmp)
                raise
            compacted = await self._in_loop(lambda: self._register_snapshot(snapshot.meta))
            if compacted:
                await trio.to_thread.run_sync(storage.delete_garbage)
            store.prune(keep=SNAPSHOT_KEEP)
            taken = True
            logger.info("%s: snapshot at %d", self.node_id, index)
        except NodeStopped:
            pass
        except Exception:
            logger.exception(
                "%s: taking a snapshot failed; the next one will be tried", self.node_id
            )
        finally:
            driver.snapshot_finished(taken)

    def _register_snapshot(self, meta: SnapshotMeta) -> bool:
        """In the loop: stream ``meta`` from now on and compact the log behind it. Only the
        bounds move here (one small transaction, between rounds, so the core never sees the log
        shrink mid-round); the entries below them are deleted in a worker thread afterwards."""
        driver, storage = self.driver, self.storage
        assert driver is not None and storage is not None
        compact = driver.snapshot_registered(meta)
        if compact is None:
            return False
        storage.compact(compact, delete_now=False)
        driver.log_compacted()
        return True

    async def _in_loop(self, fn: Callable[[], R]) -> R:
        """Run ``fn`` in the core loop between rounds (no Ready outstanding) and return what it
        returns; an exception it raises is raised here, and NodeStopped if the node stops
        first."""
        driver = self._running_driver()
        done = _Waiter()

        def call() -> None:
            try:
                done.set(fn())
            except Exception as exc:
                done.fail(exc)

        self._loop_waiters.add(done)
        try:
            driver.call(call)
            self._wake.set()
            return await done.wait()  # type: ignore[no-any-return]
        finally:
            self._loop_waiters.discard(done)

    async def _install_snapshot(self, meta: SnapshotMeta) -> None:
        """A received snapshot the core accepted: make the log start after it, then restore the
        state machine from it (a crash between the two is repaired at start)."""
        assert self.snapshots is not None and self.storage is not None
        storage, state_machine = self.storage, self.state_machine
        snapshot = self.snapshots.find(meta.index, meta.term)
        assert snapshot is not None, f"the core accepted a snapshot {meta} that was not staged"

        async def install() -> None:
            await trio.to_thread.run_sync(storage.install_snapshot, meta)

        async def restore() -> tuple[int, int]:
            return await trio.to_thread.run_sync(state_machine.restore, snapshot.path)

        await self._storage_retry(install)
        index, term = await self._storage_retry(restore)
        assert (index, term) == (meta.index, meta.term), ((index, term), meta)
        self.snapshots.prune(keep=SNAPSHOT_KEEP)

    # --- snapshot streams ----------------------------------------------------------------------
    def _start_streams(self, sends: tuple[InstallSnapshot, ...]) -> None:
        driver, store, nursery = self.driver, self.snapshots, self._nursery
        assert driver is not None and store is not None and nursery is not None
        for msg in sends:
            snapshot = store.find(msg.meta.index, msg.meta.term)
            if snapshot is None:
                logger.error("%s: no snapshot file for %s", self.node_id, msg.meta)
                driver.stream_unavailable(msg)
                continue
            sender = driver.begin_stream(msg, snapshot.size_bytes)
            if sender is not None:
                self._streams[sender] = trio.Event()
                nursery.start_soon(self._stream, sender, snapshot)
        self._on_outcomes(driver.take_outcomes())  # streams an older one replaced: they end

    async def _stream(self, sender: ChunkSender, snapshot: Snapshot) -> None:
        """Send the chunks the driver's sender asks for; wait for it to change (replies, a
        timeout, a cancel) and go on until it has finished."""
        store, driver = self.snapshots, self.driver
        assert store is not None and driver is not None
        try:
            with store.open(snapshot) as reader:
                while not sender.finished and not self._stopped:
                    for offset, length in sender.take_sends():
                        data = await trio.to_thread.run_sync(reader.read_at, offset, length)
                        if sender.finished:
                            break
                        self._send_now(sender.chunk(offset, data))
                    event = self._streams.get(sender)
                    if event is None or sender.finished:
                        break
                    await event.wait()
                    self._streams[sender] = trio.Event()
        except OSError:
            logger.exception("%s: reading snapshot %s", self.node_id, snapshot.path)
            driver.abort_stream(sender)
            self._wake.set()
        finally:
            self._streams.pop(sender, None)

    def _stage_chunk(self, chunk: SnapshotChunk) -> None:
        """Follower side: stage the chunk (raft_zmq/snapshot_stream.py); once the snapshot is
        complete, the core gets the InstallSnapshot that the leader's core emitted."""
        driver, store = self.driver, self.snapshots
        assert driver is not None and store is not None
        reply, install = accept_chunk(store, chunk, driver.core.term, self.node_id)
        self._send_now(reply)
        if install is not None:
            driver.receive([install])
