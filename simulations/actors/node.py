"""One simulated doq node: the real consensus core and the real LMDB queue state machine, driven
by the Ready contract over the simulated disk, network and clock.

It runs the real driver (raft_zmq/driver/): what to feed the core, what each Ready resolves, when
to snapshot and compact, and the snapshot streams' bookkeeping are the production code. This
module is only the simulated process around it, with events instead of Trio tasks: inputs
accumulate in the driver; a round feeds them, then for each Ready sends the early messages,
starts the synced write, and only when the simulated sync completes sends the late messages,
applies the committed entries and finishes the round. While a write is in flight the node takes
no other round, so everything that arrives meanwhile joins the next one (group commit).

Crash semantics (docs/simulations.md): a crash is a process crash. The Raft log loses the write in
flight (simulations/world/disk.py); the state machine's LMDB keeps every committed transaction and
the snapshot store keeps every finalized file (both are real files in the node's directory, and a
killed process loses nothing the kernel already has). A restart rebuilds the node with the same code
as raft_zmq/node.py (raft_zmq/recovery.py): restore the state machine from the snapshot the log
names if it is behind the log's start, then build the core from the durable hard state, snapshot and
log, resuming after the state machine's last applied index.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from typing import Any, Protocol

import attrs

from doq.state.identity import PLANT_NODE_NUMBER_BY_HASH
from doq.state.machine import QueueStateMachine
from raft_zmq.core.raft import RaftCore
from raft_zmq.core.ready import (
    ConfigChange,
    ConfigChangeRejected,
    CoreOptions,
    NotLeader,
    ProposalDropped,
    Role,
    SoftState,
)
from raft_zmq.core.types import ClusterConfig, Entry, InstallSnapshot, Message, SnapshotChunk
from raft_zmq.driver import (
    ChunkSender,
    Driver,
    DriverOptions,
    LeadershipLost,
    Outcomes,
    ProposalLost,
    Round,
    StreamOptions,
)
from raft_zmq.driver.limits import (
    SNAPSHOT_CHUNKS_IN_FLIGHT_MAX,
    SNAPSHOT_KEEP,
    STORAGE_FULL_RETRY_INTERVAL_MS,
)
from raft_zmq.driver.plants import DRIVER_PLANTS
from raft_zmq.recovery import recover_state_machine, streamable_snapshot
from raft_zmq.snapshot_stream import accept_chunk
from raft_zmq.snapshots import SnapshotStore
from raft_zmq.storage import StorageCorruptError
from simulations.trace import Trace
from simulations.wire import describe
from simulations.world.clock import NodeClock
from simulations.world.disk import CompletedWrite, PendingWrite, SimLog
from simulations.world.loop import US_PER_MS, EventLoop
from simulations.world.network import Packet, SimNetwork
from simulations.world.profile import DiskProfile, RaftProfile

STATE_PLANTS = frozenset({PLANT_NODE_NUMBER_BY_HASH})  # QueueStateMachine(plants=...)
STATE_MAP_SIZE_BYTES = 64 << 20  # address space of each simulated node's LMDB state
ALL_BYTES = 1 << 62  # no byte limit on a read of the log
SNAPSHOT_RESTORE_US = 2 * US_PER_MS  # restoring the state machine from a received snapshot
# Small chunks and a short timeout, so that streams take several messages and the loss of any
# one of them (and the sender's go-back) is exercised; the window is production's.
SIM_STREAM = StreamOptions(
    chunk_bytes=4096, chunks_in_flight_max=SNAPSHOT_CHUNKS_IN_FLIGHT_MAX, timeout_ms=300
)


class NodeObserver(Protocol):
    """What the checkers learn from a node, at the moment it happens."""

    def on_soft_state(self, node: SimNode, soft: SoftState) -> None: ...

    def on_leader_ready(self, node: SimNode, term: int) -> None:
        """The node's first Ready as leader of ``term``, before any of its messages leave."""
        ...

    def on_persisted(self, node: SimNode, write: PendingWrite, done: CompletedWrite) -> None: ...

    def on_commit_advanced(self, node: SimNode, entries: list[Entry]) -> None:
        """The node's commit index moved past ``entries`` (the moment it decided or learnt it)."""
        ...

    def on_committed(self, node: SimNode, entries: tuple[Entry, ...]) -> None: ...

    def on_applied(self, node: SimNode, entries: tuple[Entry, ...], results: list[Any]) -> None: ...

    def on_restore_started(self, node: SimNode) -> None:
        """A received snapshot is in the node's log; its state machine is being restored."""
        ...

    def on_snapshot_restored(self, node: SimNode, index: int) -> None: ...

    def on_snapshot_staged(self, node: SimNode) -> None:
        """A received snapshot's file is complete; the core has yet to take it into the log."""
        ...


class ProposalDone(Protocol):
    def __call__(self, outcome: str, value: Any) -> None:
        """``outcome``: "ok" (value: the state machine's result), "not_leader" (value: the
        leader known), "dropped", "lost" (overwritten), "leadership_lost", "unknown"."""
        ...


@attrs.frozen(eq=False)
class _Token:
    """What the driver hands back for a waiting proposal or read."""

    done: Callable[[str, Any], None]
    proposed: Callable[[int, int], None] | None = None


def _failure(error: Exception) -> tuple[str, Any]:
    """The outcome a simulated client sees for a driver's failure."""
    if isinstance(error, NotLeader):
        return "not_leader", error.leader
    if isinstance(error, ProposalLost):
        return "lost", str(error)
    if isinstance(error, LeadershipLost):
        return "leadership_lost", str(error)
    if isinstance(error, ConfigChangeRejected):
        return "rejected", str(error)
    assert isinstance(error, ProposalDropped), error
    return "dropped", str(error)


@attrs.define
class NodeStats:
    rounds: int = 0
    entries_persisted: int = 0
    entries_applied: int = 0
    snapshots_taken: int = 0
    snapshots_sent: int = 0
    snapshots_installed: int = 0
    storage_full_retries: int = 0
    snapshots_superseded: int = 0  # a slow snapshot overtaken by one installed from the leader
    crashes: int = 0
    pauses: int = 0


class SimNode:
    def __init__(
        self,
        node_id: str,
        directory: str,
        bootstrap: ClusterConfig,
        *,
        loop: EventLoop,
        network: SimNetwork,
        trace: Trace,
        observer: NodeObserver,
        clock: NodeClock,
        core_options: CoreOptions,
        raft: RaftProfile,
        disk_profile: DiskProfile,
        disk_rng: random.Random,
        core_rng: random.Random,
        redelivery_by_local_clock: bool,
        apply_boundary: int,
        plants: frozenset[str] = frozenset(),
        joining: bool = False,
    ) -> None:
        self.id = node_id
        self.directory = directory
        self.loop = loop
        self.network = network
        self.trace = trace
        self.observer = observer
        self.clock = clock
        self.core_options = core_options
        self.raft = raft
        self._disk_profile = disk_profile
        self._disk_rng = disk_rng
        self._core_rng = core_rng
        self._redelivery_by_local_clock = redelivery_by_local_clock
        self._apply_boundary = apply_boundary
        self._plants = plants  # the driver's and recovery's planted bugs (simulations/plants.py)
        # The machine's disk (survives crashes): a founding member's holds the bootstrap
        # configuration; a spare's is empty until a leader adds it and sends it the log.
        self.disk = SimLog() if joining else SimLog.bootstrapped(bootstrap)
        self.stats = NodeStats()
        self.generation = 0  # bumped by every crash: events of an earlier life are ignored
        self.up = False
        self.paused = False
        self.core: RaftCore | None = None
        self.driver: Driver[_Token] | None = None
        self.state: QueueStateMachine | None = None
        self.snapshots: SnapshotStore | None = None
        self.packet_handler: Callable[[Packet], None] | None = None  # the service's traffic
        self.disk_full_until_us = 0  # the machine's disk has no room until then (StorageFull)
        self._reset_process_memory()

    def _reset_process_memory(self) -> None:
        """Everything a process holds in memory, lost by a crash."""
        self.busy = False  # a Ready's write is in flight: no other round until it completes
        self.restoring = False  # the state machine is being restored from a received snapshot
        self.driver = None
        self._commit_seen = 0  # the commit index last reported to the observer
        self._wake_scheduled = False
        self._held: list[Packet] = []  # arrived while paused
        self._deferred: Callable[[], None] | None = None  # a write completed during a pause
        self._stream_data: dict[ChunkSender, bytes] = {}  # the file of each running stream
        # Reads (ReadIndex) handed to the driver and not yet answered: when each was asked (the
        # liveness check's, simulations/checkers/liveness.py)
        self.reads_waiting: dict[int, int] = {}
        self._read_key = 0

    @property
    def applied_index(self) -> int:
        return self.driver.applied_index if self.driver is not None else 0

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        assert not self.up, f"{self.id} is already running"
        if self.disk.corrupt_last:  # as raft_zmq/storage.py finds it at open: fatal, no drop
            index = self.disk.last_index()
            raise StorageCorruptError(f"log entry {index}: checksum mismatch (the last entry)")
        self._reset_process_memory()
        redelivery = self._local_clock_ms if self._redelivery_by_local_clock else None
        self.state = QueueStateMachine(
            os.path.join(self.directory, "state"),
            map_size_bytes=STATE_MAP_SIZE_BYTES,
            sync=False,  # a process crash keeps committed transactions; no power loss here
            redelivery_clock=redelivery,
            plants=self._plants & STATE_PLANTS,
        )
        self.snapshots = SnapshotStore(os.path.join(self.directory, "snapshots"))
        recover_state_machine(self.state, self.snapshots, self.disk.snapshot, self._plants)
        self.core = self._new_core()
        self.driver = Driver(
            self.core,
            DriverOptions(
                snapshot_interval_entries=self.raft.snapshot_interval_entries,
                snapshot_trailing_entries=self.raft.snapshot_trailing_entries,
                stream=SIM_STREAM,
                plants=self._plants & DRIVER_PLANTS,
            ),
        )
        self._commit_seen = self.core.log.committed
        self.up = True
        self.trace.add(self.loop.now_us, f"{self.id} start applied {self.applied_index}")
        self.loop.after(self._tick_interval_us(), self._tick, self.generation)

    def _new_core(self) -> RaftCore:
        assert self.state is not None and self.snapshots is not None
        applied, _ = self.state.last_applied()
        assert applied <= self.disk.last_index(), (
            f"{self.id}: state applied {applied} beyond the log's last index "
            f"{self.disk.last_index()}: the log lost durable writes"
        )
        options = attrs.evolve(
            self.core_options,
            election_timeout_ticks=self.raft.election_timeout_ticks,
            heartbeat_interval_ticks=self.raft.heartbeat_interval_ticks,
        )
        core = RaftCore(
            self.id,
            self.disk,
            self.disk.hard_state,
            self.disk.snapshot,
            rng=self._core_rng,
            options=options,
            applied=applied,
        )
        streamable = streamable_snapshot(
            self.snapshots, core.log.applied, core.log.first_index(), self._plants
        )
        if streamable is not None:
            core.set_snapshot(streamable)
        return core

    def crash(self) -> None:
        """Kill the process: the write in flight is lost, memory is gone, files stay."""
        assert self.up
        lost = self.disk.crash()
        self.generation += 1
        self.up = False
        self.paused = False
        self.stats.crashes += 1
        assert self.state is not None
        self.state.close()
        self.state = None
        self.core = None
        self.snapshots = None
        self._reset_process_memory()
        note = f" losing a write of {len(lost.entries)} entries" if lost else ""
        self.trace.add(self.loop.now_us, f"{self.id} CRASH{note}")

    def pause(self, duration_us: int) -> None:
        """Stop the process (a long GC, a VM migration): nothing runs, inputs pile up."""
        if not self.up or self.paused:
            return
        self.paused = True
        self.stats.pauses += 1
        self.trace.add(self.loop.now_us, f"{self.id} PAUSE {duration_us // US_PER_MS} ms")
        self.loop.after(duration_us, self._resume, self.generation)

    def resume(self) -> None:
        """End a pause early (the faults are healing)."""
        self._resume(self.generation)

    def _resume(self, generation: int) -> None:
        if generation != self.generation or not self.paused:
            return
        self.paused = False
        self.trace.add(self.loop.now_us, f"{self.id} resume")
        held, self._held = self._held, []
        for packet in held:
            self.deliver(packet)
        if self._deferred is not None:
            deferred, self._deferred = self._deferred, None
            deferred()
        else:
            self._wake()

    def close(self) -> None:
        if self.state is not None:
            self.state.close()
            self.state = None

    # --- clocks ---------------------------------------------------------------------------------
    def _local_clock_ms(self) -> int:
        return self.clock.unix_ms(self.loop.now_us)

    def clock_ms(self) -> int:
        return self._local_clock_ms()

    def _now_ms(self) -> int:
        """The driver's monotonic time (stream timeouts): virtual time, not the skewed clock."""
        return self.loop.now_us // US_PER_MS

    def _tick_interval_us(self) -> int:
        return self.clock.local_interval_us(self.raft.tick_ms * US_PER_MS)

    def _tick(self, generation: int) -> None:
        if generation != self.generation:
            return
        self.loop.after(self._tick_interval_us(), self._tick, generation)
        assert self.driver is not None
        self.driver.tick()
        self._wake()

    # --- inputs ---------------------------------------------------------------------------------
    def deliver(self, packet: Packet) -> None:
        if not self.up:
            return
        if self.paused:
            self._held.append(packet)
            return
        payload = packet.payload
        self.trace.add(self.loop.now_us, f"{packet.src}>{self.id} {describe(payload)}")
        if isinstance(payload, Message):
            assert self.driver is not None
            self.driver.receive([payload])
            self._wake()
        elif self.packet_handler is not None:
            self.packet_handler(packet)

    def propose(
        self, data: bytes, done: ProposalDone, proposed: Callable[[int, int], None] | None
    ) -> None:
        """Propose ``data``; ``proposed(index, term)`` is called once it is in the log, ``done``
        once its outcome is known (never, if the node crashes first)."""
        assert self.up and self.driver is not None
        try:
            self.driver.propose(data, _Token(done, proposed))
        except NotLeader as exc:
            done("not_leader", exc.leader)
            return
        self._wake()

    def read_barrier(self, done: Callable[[str, Any], None]) -> None:
        """ReadIndex: ``done("ok", index)`` once this node's state reflects every write
        committed before the call, ``done("not_leader", leader)`` if leadership is lost."""
        assert self.up and self.driver is not None
        key, generation = self._read_key, self.generation
        self._read_key += 1

        def answered(outcome: str, value: Any) -> None:
            if generation == self.generation:
                self.reads_waiting.pop(key, None)
            done(outcome, value)

        try:
            self.driver.read(_Token(answered))
        except NotLeader as exc:
            done("not_leader", exc.leader)
            return
        self.reads_waiting[key] = self.loop.now_us
        self._wake()

    def propose_config(self, change: ConfigChange, done: ProposalDone) -> None:
        """A membership change through the driver; ``done`` once it is applied (or failed)."""
        assert self.driver is not None
        self.driver.propose_config(change, _Token(done))
        self._wake()

    def call(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` with the core between rounds."""
        assert self.driver is not None
        self.driver.call(fn)
        self._wake()

    @property
    def is_leader(self) -> bool:
        return self.up and self.core is not None and self.core.role is Role.LEADER

    @property
    def leader_id(self) -> str | None:
        return self.core.leader if self.up and self.core is not None else None

    # --- the loop -------------------------------------------------------------------------------
    def _wake(self) -> None:
        if self._wake_scheduled or not self.up:
            return
        self._wake_scheduled = True
        self.loop.soon(self._run, self.generation)

    def _run(self, generation: int) -> None:
        if generation != self.generation:
            return
        self._wake_scheduled = False
        if self.busy or self.paused:
            return  # the write's completion (or the resume) runs the loop again
        self._rounds()

    def _rounds(self) -> None:
        """Feed the driver and run Ready rounds until one must wait for its simulated sync."""
        driver, core = self.driver, self.core
        assert driver is not None and core is not None
        while True:
            self._on_outcomes(driver.feed(self._now_ms()))
            self._note_commit(core)
            rnd = driver.next_ready()
            if rnd is None:
                if driver.has_input():
                    continue
                return
            rd = rnd.ready
            self.stats.rounds += 1
            if rd.soft_state is not None and rd.soft_state.role is Role.LEADER:
                self.observer.on_leader_ready(self, rd.soft_state.term)
            self._send_all(rnd.early)
            self._start_streams(rnd.snapshot_sends)
            if rd.must_sync:
                self.busy = True
                write = self.disk.begin_write(rd.hard_state, rd.entries, rd.snapshot)
                self.loop.after(self._sync_latency_us(), self._synced, self.generation, rnd, write)
                return
            if not self._finish_round(rnd):
                return  # its apply waits for room

    def _note_commit(self, core: RaftCore) -> None:
        committed = core.log.committed
        if committed > self._commit_seen:
            lo = max(self._commit_seen + 1, core.log.first_index())
            if lo <= committed:
                entries = core.log.entries(lo, committed + 1, ALL_BYTES)
                self.observer.on_commit_advanced(self, entries)
            self._commit_seen = committed

    def _sync_latency_us(self) -> int:
        p, rng = self._disk_profile, self._disk_rng
        if p.spike_rate and rng.random() < p.spike_rate:
            return p.spike_us
        return rng.randint(p.sync_min_us, p.sync_max_us)

    def _synced(self, generation: int, rnd: Round, write: PendingWrite) -> None:
        if generation != self.generation:
            return  # the node crashed while the write was in flight: it is lost
        if self.paused:
            self._deferred = lambda: self._synced(generation, rnd, write)
            return
        if self._storage_full(lambda: self._synced(generation, rnd, write)):
            return  # the log's save raised StorageFull: nothing of it took effect
        done = self.disk.complete_write(write)
        self.stats.entries_persisted += len(write.entries)
        self.observer.on_persisted(self, write, done)
        if rnd.ready.snapshot is not None:
            # The log starts after the received snapshot now. Restoring the state machine takes
            # a while, and a crash meanwhile leaves it behind the log's start: the restart
            # repairs that (raft_zmq/recovery.py), as raft_zmq.node's does.
            self.restoring = True
            self.loop.after(SNAPSHOT_RESTORE_US, self._restored, generation, rnd)
            self.observer.on_restore_started(self)
            return
        self._round_done(rnd)

    def _restored(self, generation: int, rnd: Round) -> None:
        if generation != self.generation:
            return
        if self.paused:
            self._deferred = lambda: self._restored(generation, rnd)
            return
        self._install_snapshot(rnd)
        self.restoring = False
        self._round_done(rnd)

    def _round_done(self, rnd: Round) -> None:
        self.busy = False
        if self._finish_round(rnd):
            self._rounds()

    def _storage_full(self, retry: Callable[[], None]) -> bool:
        """raft_zmq/node.py's ``_storage_retry``: while the disk is full, the write or apply
        raises StorageFull, the driver is flagged blocked (proposals are refused, the service
        answers "insufficient storage"), and the same work is tried again after
        ``STORAGE_FULL_RETRY_INTERVAL_MS``. False once there is room (the flag is cleared)."""
        driver = self.driver
        assert driver is not None
        if self.loop.now_us < self.disk_full_until_us:
            if not driver.storage_blocked:
                self.trace.add(self.loop.now_us, f"{self.id} storage full: retrying")
            driver.storage_blocked = True
            self.stats.storage_full_retries += 1
            generation = self.generation

            def again() -> None:
                if generation != self.generation:
                    return
                if self.paused:
                    self._deferred = again
                    return
                retry()

            self.loop.after(STORAGE_FULL_RETRY_INTERVAL_MS * US_PER_MS, again)
            return True
        if driver.storage_blocked:
            driver.storage_blocked = False
            self.trace.add(self.loop.now_us, f"{self.id} storage has room again")
        return False

    def _finish_round(self, rnd: Round) -> bool:
        """Send, apply, finish; False when the apply waits for room (the node stays busy: no
        other round until this one is finished)."""
        self._send_all(rnd.late)
        return self._apply_and_finish(rnd, resumed=False)

    def _apply_and_finish(self, rnd: Round, resumed: bool) -> bool:
        driver = self.driver
        assert driver is not None
        rd = rnd.ready
        if rd.committed and self._storage_full(lambda: self._apply_and_finish(rnd, True)):
            self.busy = True  # the state machine's apply raised StorageFull: nothing applied
            return False
        results: list[Any] = []
        if rd.committed:
            self.observer.on_committed(self, rd.committed)
            results = self._apply(rd.committed)
        # finish() advances the core: an installed snapshot becomes the one to stream on.
        self._on_outcomes(driver.finish(rnd, results))
        if resumed:  # the retry finished the round: the node may take the next one
            self.busy = False
            self._rounds()
        return True

    def _send_all(self, messages: tuple[Message, ...]) -> None:
        for msg in messages:
            self.network.send(self.id, msg.to, msg)

    def send_now(self, msg: Message) -> None:
        """For the snapshot streams: a message outside any Ready."""
        if self.up:
            self.network.send(self.id, msg.to, msg)

    def _apply(self, committed: tuple[Entry, ...]) -> list[Any]:
        """Apply in batches that end at every multiple of ``apply_boundary``, so that the
        checkers can compare every replica's state there (one batch per Ready otherwise, as
        raft_zmq.node applies; the StateMachine contract makes the split invisible)."""
        assert self.state is not None
        results: list[Any] = []
        start = 0
        for i, entry in enumerate(committed):
            if entry.index % self._apply_boundary == 0 or i == len(committed) - 1:
                batch = committed[start : i + 1]
                batch_results = self.state.apply(batch)
                assert len(batch_results) == len(batch), "apply returns one result per entry"
                self.stats.entries_applied += len(batch)
                self.observer.on_applied(self, batch, batch_results)
                results.extend(batch_results)
                start = i + 1
        return results

    # --- what the driver decided ----------------------------------------------------------------
    def _on_outcomes(self, out: Outcomes[_Token]) -> None:
        for token, result in out.resolved:
            token.done("ok", result)
        if out.soft_state is not None:
            soft = out.soft_state
            self.trace.add(
                self.loop.now_us,
                f"{self.id} is {soft.role.value} t{soft.term} leader {soft.leader}",
            )
            self.observer.on_soft_state(self, soft)
        for token, index, term in out.appended:
            if token.proposed is not None:
                token.proposed(index, term)
        for token, error in out.failed:
            token.done(*_failure(error))
        for token, read_index in out.reads_ready:
            token.done("ok", read_index)
        for chunk in out.chunks:
            self._stage_chunk(chunk)
        for sender in out.streams:
            self._pump_stream(sender)
        if out.take_snapshot:
            self._take_snapshot()

    # --- snapshots ------------------------------------------------------------------------------
    def _take_snapshot(self) -> None:
        """Between rounds (no Ready outstanding): snapshot the state machine, then compact the
        log behind it, as the driver decides (raft_zmq/driver/driver.py). The state machine's
        snapshot reads one transaction now; writing the file takes ``snapshot_write_us`` of the
        profile, during which rounds go on (production's worker thread), so a snapshot received
        from the leader may be installed before this one is registered (issue 10, finding 1)."""
        state, store = self.state, self.snapshots
        assert state is not None and store is not None
        tmp = store.new_temp_path()
        index, _term = state.snapshot(tmp)
        delay_us = self.raft.snapshot_write_us
        if delay_us:
            self.loop.after(delay_us, self._snapshot_file_done, self.generation, tmp, index)
        else:
            self._snapshot_written(tmp, index)

    def _snapshot_file_done(self, generation: int, tmp: str, index: int) -> None:
        """The file is written: the rest happens between rounds, as production's core loop
        takes the worker's result (``Driver.call``)."""
        if generation != self.generation:
            return  # the process died while writing: the temp file stays, as in production
        assert self.driver is not None
        self.driver.call(lambda: self._snapshot_written(tmp, index))
        self._wake()

    def _snapshot_written(self, tmp: str, index: int) -> None:
        driver, store = self.driver, self.snapshots
        assert driver is not None and store is not None
        meta = driver.snapshot_written(index)
        if meta is None:
            store.discard_temp(tmp)
            driver.snapshot_finished(False)
            self.stats.snapshots_superseded += 1
            self.trace.add(self.loop.now_us, f"{self.id} snapshot at {index} superseded")
            return
        store.finalize(tmp, meta)
        compact = driver.snapshot_registered(meta)
        if compact is not None:
            self.disk.compact(compact)
            driver.log_compacted()
        store.prune(keep=SNAPSHOT_KEEP)
        driver.snapshot_finished(True)
        self.stats.snapshots_taken += 1
        log_from = self.disk.first_index()
        self.trace.add(self.loop.now_us, f"{self.id} snapshot at {index}, log from {log_from}")

    def _start_streams(self, sends: tuple[InstallSnapshot, ...]) -> None:
        driver, store = self.driver, self.snapshots
        assert driver is not None and store is not None
        for msg in sends:
            snapshot = store.find(msg.meta.index, msg.meta.term)
            if snapshot is None:
                driver.stream_unavailable(msg)
                self._wake()
                continue
            sender = driver.begin_stream(msg, snapshot.size_bytes)
            if sender is None:
                continue  # already streaming this one
            with store.open(snapshot) as reader:
                self._stream_data[sender] = reader.read_at(0, snapshot.size_bytes)
            self._pump_stream(sender)
        self._on_outcomes(driver.take_outcomes())  # streams a newer one replaced: they end

    def _pump_stream(self, sender: ChunkSender) -> None:
        data = self._stream_data.get(sender)
        if data is None:
            return
        if sender.finished:
            del self._stream_data[sender]
            if sender.result:
                self.stats.snapshots_sent += 1
            return
        for offset, length in sender.take_sends():
            self.send_now(sender.chunk(offset, data[offset : offset + length]))

    def _stage_chunk(self, chunk: SnapshotChunk) -> None:
        """Follower side: the same chunk rules as raft_zmq.node (raft_zmq/snapshot_stream.py)."""
        driver, store = self.driver, self.snapshots
        assert driver is not None and store is not None
        reply, install = accept_chunk(store, chunk, driver.core.term, self.id)
        self.send_now(reply)
        if install is not None:
            driver.receive([install])
            self._wake()
            self.observer.on_snapshot_staged(self)

    def _install_snapshot(self, rnd: Round) -> None:
        """The received snapshot is in the log now; restore the state machine from its file."""
        meta = rnd.ready.snapshot
        assert meta is not None and self.snapshots is not None and self.state is not None
        snapshot = self.snapshots.find(meta.index, meta.term)
        assert snapshot is not None, f"the core accepted a snapshot {meta} that was not staged"
        index, term = self.state.restore(snapshot.path)
        assert (index, term) == (meta.index, meta.term), ((index, term), meta)
        self.snapshots.prune(keep=SNAPSHOT_KEEP)
        self.stats.snapshots_installed += 1
        self.observer.on_snapshot_restored(self, index)
        self.trace.add(self.loop.now_us, f"{self.id} installed snapshot {index}/{term}")
