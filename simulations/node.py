"""One simulated doq node: the real consensus core and the real LMDB queue state machine, driven
by the Ready contract over the simulated disk, network and clock.

It follows raft_zmq/node.py step for step, with events instead of tasks: inputs (messages, ticks,
proposals, reads, calls) accumulate; a round feeds them to the core, then for each Ready sends the
early messages, starts the synced write, and only when the simulated sync completes sends the
late messages, applies the committed entries, resolves reads and advances. While a write is in
flight the node takes no other round, so everything that arrives meanwhile joins the next one
(group commit). Snapshots are taken every ``snapshot_interval_entries`` applied entries, the log
is compacted behind them, and a follower behind the compacted log receives the snapshot file in
chunks, as the real driver streams it.

Crash semantics (docs/simulations.md): a crash is a process crash. The Raft log loses the write
in flight (simulations/disk.py); the state machine's LMDB keeps every committed transaction and
the snapshot store keeps every finalized file (both are real files in the node's directory, and a
killed process loses nothing the kernel already has). A restart rebuilds the node exactly as
raft_zmq/node.py does: restore the state machine from the latest snapshot if it is behind the
log's start, then build the core from the durable hard state, snapshot and log, resuming after
the state machine's last applied index.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from typing import Any, Protocol

import attrs

from doq.state.machine import QueueStateMachine
from raft_zmq.core.raft import RaftCore
from raft_zmq.core.ready import (
    CoreOptions,
    NotLeader,
    ProposalDropped,
    ReadState,
    Ready,
    Role,
    SoftState,
)
from raft_zmq.core.types import (
    ClusterConfig,
    Entry,
    InstallSnapshot,
    Message,
    SnapshotChunk,
    SnapshotChunkReply,
)
from raft_zmq.snapshots import SnapshotStore
from simulations.clock import NodeClock
from simulations.disk import CompletedWrite, PendingWrite, SimLog
from simulations.loop import US_PER_MS, EventLoop
from simulations.network import Packet, SimNetwork
from simulations.profile import DiskProfile, RaftProfile
from simulations.snapshots import SnapshotReceiver, SnapshotSender
from simulations.trace import Trace
from simulations.wire import describe

SNAPSHOT_KEEP = 2  # snapshot files kept per node, as raft_zmq.node keeps them
MISSED_TICKS_MAX = 1000  # a paused node counts at most this many missed ticks (raft_zmq.node)
STATE_MAP_SIZE_BYTES = 64 << 20  # address space of each simulated node's LMDB state
ALL_BYTES = 1 << 62  # no byte limit on a read of the log
SNAPSHOT_RESTORE_US = 2 * US_PER_MS  # restoring the state machine from a received snapshot


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


class ProposalDone(Protocol):
    def __call__(self, outcome: str, value: Any) -> None:
        """``outcome``: "ok" (value: the state machine's result), "not_leader" (value: the
        leader known), "dropped", "lost" (overwritten), "leadership_lost", "unknown"."""
        ...


@attrs.define
class _Proposal:
    term: int
    done: ProposalDone


@attrs.define
class NodeStats:
    rounds: int = 0
    entries_persisted: int = 0
    entries_applied: int = 0
    snapshots_taken: int = 0
    snapshots_sent: int = 0
    snapshots_installed: int = 0
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
        self.disk = SimLog.bootstrapped(bootstrap)  # the machine's disk: survives crashes
        self.stats = NodeStats()
        self.generation = 0  # bumped by every crash: events of an earlier life are ignored
        self.up = False
        self.paused = False
        self.core: RaftCore | None = None
        self.state: QueueStateMachine | None = None
        self.snapshots: SnapshotStore | None = None
        self.packet_handler: Callable[[Packet], None] | None = None  # the service's traffic
        self._reset_process_memory()

    def _reset_process_memory(self) -> None:
        """Everything a process holds in memory, lost by a crash."""
        self.busy = False  # a Ready's write is in flight: no other round until it completes
        self.restoring = False  # the state machine is being restored from a received snapshot
        self.applied_index = 0
        self._commit_seen = 0  # the commit index last reported to the observer
        self._wake_scheduled = False
        self._inbox: list[Message] = []
        self._held: list[Packet] = []  # arrived while paused
        self._ticks = 0
        self._calls: list[Callable[[], None]] = []
        self._new_proposals: list[tuple[bytes, ProposalDone, Callable[[int, int], None]]] = []
        self._proposals: dict[int, _Proposal] = {}
        self._new_reads: list[Callable[[str, Any], None]] = []
        self._reads: dict[int, Callable[[str, Any], None]] = {}
        self._reads_ready: list[tuple[int, Callable[[str, Any], None]]] = []
        self._read_ctx = 0
        self._deferred: Callable[[], None] | None = None  # a write completed during a pause
        self._senders: dict[str, SnapshotSender] = {}
        self._receiver = SnapshotReceiver(self)

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        assert not self.up, f"{self.id} is already running"
        self._reset_process_memory()
        redelivery = self._local_clock_ms if self._redelivery_by_local_clock else None
        self.state = QueueStateMachine(
            os.path.join(self.directory, "state"),
            map_size_bytes=STATE_MAP_SIZE_BYTES,
            sync=False,  # a process crash keeps committed transactions; no power loss here
            redelivery_clock=redelivery,
        )
        self.snapshots = SnapshotStore(os.path.join(self.directory, "snapshots"))
        self._recover_state_machine()
        self.core = self._new_core()
        self.applied_index = self.core.log.applied
        self._commit_seen = self.core.log.committed
        self.up = True
        self.trace.add(self.loop.now_us, f"{self.id} start applied {self.applied_index}")
        self.loop.after(self._tick_interval_us(), self._tick, self.generation)

    def _recover_state_machine(self) -> None:
        """raft_zmq.node: a crash between installing a snapshot in the log and restoring the state
        machine leaves the state machine behind the log's start; restore the snapshot."""
        assert self.state is not None and self.snapshots is not None
        applied, _ = self.state.last_applied()
        if applied >= self.disk.snapshot.index:
            return
        latest = self.snapshots.latest()
        assert latest is not None and latest.meta.index >= self.disk.snapshot.index, (
            f"{self.id}: state applied {applied}, log starts after {self.disk.snapshot.index}, "
            "and no snapshot covers the gap"
        )
        self.state.restore(latest.path)

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
        latest = self.snapshots.latest()
        if latest is not None and latest.meta.index <= core.log.applied:
            core.set_snapshot(latest.meta)
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

    def _tick_interval_us(self) -> int:
        return self.clock.local_interval_us(self.raft.tick_ms * US_PER_MS)

    def _tick(self, generation: int) -> None:
        if generation != self.generation:
            return
        self.loop.after(self._tick_interval_us(), self._tick, generation)
        self._ticks = min(self._ticks + 1, MISSED_TICKS_MAX)
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
            self._inbox.append(payload)
            self._wake()
        elif self.packet_handler is not None:
            self.packet_handler(packet)

    def propose(
        self, data: bytes, done: ProposalDone, proposed: Callable[[int, int], None]
    ) -> None:
        """Propose ``data``; ``proposed(index, term)`` is called once it is in the log, ``done``
        once its outcome is known (never, if the node crashes first)."""
        assert self.up and self.core is not None
        if self.core.role is not Role.LEADER:
            done("not_leader", self.core.leader)
            return
        self._new_proposals.append((data, done, proposed))
        self._wake()

    def read_barrier(self, done: Callable[[str, Any], None]) -> None:
        """ReadIndex: ``done("ok", index)`` once this node's state reflects every write
        committed before the call, ``done("not_leader", leader)`` if leadership is lost."""
        assert self.up and self.core is not None
        if self.core.role is not Role.LEADER:
            done("not_leader", self.core.leader)
            return
        self._new_reads.append(done)
        self._wake()

    def call(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` with the core between rounds."""
        self._calls.append(fn)
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
        self._feed_core()
        self._rounds()

    def _feed_core(self) -> None:
        core = self.core
        assert core is not None
        inbox, self._inbox = self._inbox, []
        for msg in inbox:
            if isinstance(msg, SnapshotChunk):
                self._receiver.on_chunk(msg)
            elif isinstance(msg, SnapshotChunkReply):
                sender = self._senders.get(msg.sender)
                if sender is not None:
                    sender.on_reply(msg)
            else:
                core.step(msg)
        # Ticks after messages, as raft_zmq.node does: check-quorum must see the answers first.
        ticks, self._ticks = self._ticks, 0
        for _ in range(ticks):
            core.tick()
        calls, self._calls = self._calls, []
        for call in calls:
            call()
        self._feed_proposals(core)
        self._feed_reads(core)

    def _feed_proposals(self, core: RaftCore) -> None:
        proposals, self._new_proposals = self._new_proposals, []
        for data, done, proposed in proposals:
            try:
                index = core.propose(data)
            except NotLeader as exc:
                done("not_leader", exc.leader)
                continue
            except ProposalDropped as exc:
                done("dropped", str(exc))
                continue
            self._proposals[index] = _Proposal(core.term, done)
            proposed(index, core.term)

    def _feed_reads(self, core: RaftCore) -> None:
        reads, self._new_reads = self._new_reads, []
        for done in reads:
            self._read_ctx += 1
            try:
                core.read_index(self._read_ctx)
            except NotLeader as exc:
                done("not_leader", exc.leader)
                continue
            self._reads[self._read_ctx] = done

    def _rounds(self) -> None:
        core = self.core
        assert core is not None
        while core.has_ready():
            self._note_commit(core)
            rd = core.ready()
            self.stats.rounds += 1
            if rd.soft_state is not None and rd.soft_state.role is Role.LEADER:
                self.observer.on_leader_ready(self, rd.soft_state.term)
            self._send_all(rd.early_messages)
            if rd.must_sync:
                self.busy = True
                write = self.disk.begin_write(rd.hard_state, rd.entries, rd.snapshot)
                self.loop.after(self._sync_latency_us(), self._synced, self.generation, rd, write)
                return
            self._finish_round(rd)
        self._resolve_reads()

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

    def _synced(self, generation: int, rd: Ready, write: PendingWrite) -> None:
        if generation != self.generation:
            return  # the node crashed while the write was in flight: it is lost
        if self.paused:
            self._deferred = lambda: self._synced(generation, rd, write)
            return
        done = self.disk.complete_write(write)
        self.stats.entries_persisted += len(write.entries)
        self.observer.on_persisted(self, write, done)
        if rd.snapshot is not None:
            # The log starts after the received snapshot now. Restoring the state machine takes
            # a while, and a crash meanwhile leaves it behind the log's start: the restart
            # repairs that (_recover_state_machine), as raft_zmq.node's does.
            self.restoring = True
            self.loop.after(SNAPSHOT_RESTORE_US, self._restored, generation, rd)
            self.observer.on_restore_started(self)
            return
        self._round_done(rd)

    def _restored(self, generation: int, rd: Ready) -> None:
        if generation != self.generation:
            return
        if self.paused:
            self._deferred = lambda: self._restored(generation, rd)
            return
        self._install_snapshot(rd)
        self.restoring = False
        self._round_done(rd)

    def _round_done(self, rd: Ready) -> None:
        self.busy = False
        self._finish_round(rd)
        self._feed_core()
        self._rounds()

    def _finish_round(self, rd: Ready) -> None:
        core = self.core
        assert core is not None
        self._send_all(rd.messages)
        if rd.committed:
            self.observer.on_committed(self, rd.committed)
            self._apply(rd.committed)
        if rd.soft_state is not None:
            self._on_soft_state(rd.soft_state)
        for state in rd.read_states:
            self._read_confirmed(state)
        for ctx in rd.failed_reads:
            done = self._reads.pop(ctx, None)
            if done is not None:
                done("not_leader", core.leader)
        core.advance(rd)  # records an installed snapshot as the one to stream on, if it leads
        self._maybe_snapshot()

    def _send_all(self, messages: tuple[Message, ...]) -> None:
        for msg in messages:
            if isinstance(msg, InstallSnapshot):
                self._start_snapshot_send(msg)
            else:
                self.network.send(self.id, msg.to, msg)

    def send_now(self, msg: Message) -> None:
        """For the snapshot streams: a message outside any Ready."""
        if self.up:
            self.network.send(self.id, msg.to, msg)

    def _apply(self, committed: tuple[Entry, ...]) -> None:
        """Apply in batches that end at every multiple of ``apply_boundary``, so that the
        checkers can compare every replica's state there (one batch per Ready otherwise, as
        raft_zmq.node applies; the StateMachine contract makes the split invisible)."""
        assert self.state is not None
        start = 0
        for i, entry in enumerate(committed):
            if entry.index % self._apply_boundary == 0 or i == len(committed) - 1:
                self._apply_batch(committed[start : i + 1])
                start = i + 1

    def _apply_batch(self, entries: tuple[Entry, ...]) -> None:
        assert self.state is not None
        results = self.state.apply(entries)
        assert len(results) == len(entries), "apply returns one result per entry"
        self.stats.entries_applied += len(entries)
        self.applied_index = entries[-1].index
        self.observer.on_applied(self, entries, results)
        for entry, result in zip(entries, results):
            proposal = self._proposals.pop(entry.index, None)
            if proposal is None:
                continue
            if proposal.term == entry.term:
                proposal.done("ok", result)
            else:
                proposal.done("lost", f"entry {entry.index} was overwritten")

    def _on_soft_state(self, soft: SoftState) -> None:
        self.trace.add(
            self.loop.now_us, f"{self.id} is {soft.role.value} t{soft.term} leader {soft.leader}"
        )
        self.observer.on_soft_state(self, soft)
        if soft.role is not Role.LEADER:
            proposals, self._proposals = self._proposals, {}
            for proposal in proposals.values():
                proposal.done("leadership_lost", f"{self.id} is no longer the leader")
            for sender in self._senders.values():
                sender.cancel()
            self._senders.clear()

    def _read_confirmed(self, state: ReadState) -> None:
        done = self._reads.pop(state.ctx, None)
        if done is not None:
            self._reads_ready.append((state.index, done))

    def _resolve_reads(self) -> None:
        if not self._reads_ready:
            return
        waiting = []
        for index, done in self._reads_ready:
            if index <= self.applied_index:
                done("ok", index)
            else:
                waiting.append((index, done))
        self._reads_ready = waiting

    # --- snapshots ------------------------------------------------------------------------------
    def _maybe_snapshot(self) -> None:
        """Between rounds (no Ready outstanding): snapshot the state machine, then compact the
        log behind it, leaving ``snapshot_trailing_entries`` for followers a little behind."""
        core, state, store = self.core, self.state, self.snapshots
        assert core is not None and state is not None and store is not None
        latest = core.latest_snapshot.index if core.latest_snapshot else 0
        since = core.log.applied - max(latest, core.log.first_index() - 1)
        if since < self.raft.snapshot_interval_entries:
            return
        tmp = store.new_temp_path()
        index, _term = state.snapshot(tmp)
        meta = core.snapshot_meta(index)
        store.finalize(tmp, meta)
        core.set_snapshot(meta)
        compact_to = index - self.raft.snapshot_trailing_entries
        if compact_to > self.disk.first_index() - 1:
            self.disk.compact(core.snapshot_meta(compact_to))
            core.log_compacted()
        store.prune(keep=SNAPSHOT_KEEP)
        self.stats.snapshots_taken += 1
        log_from = max(compact_to + 1, self.disk.first_index())
        self.trace.add(self.loop.now_us, f"{self.id} snapshot at {index}, log from {log_from}")

    def _start_snapshot_send(self, msg: InstallSnapshot) -> None:
        assert self.snapshots is not None and self.core is not None
        snapshot = self.snapshots.find(msg.meta.index, msg.meta.term)
        if snapshot is None:
            core = self.core
            self.call(lambda: core.report_snapshot(msg.to, False))
            return
        running = self._senders.get(msg.to)
        if running is not None:
            if running.msg.meta == msg.meta:
                return  # already streaming this one
            # An older stream whose last acknowledgement is still on its way: the core has moved
            # on to a newer snapshot; stream that one (as raft_zmq.node does).
            running.cancel()
        with self.snapshots.open(snapshot) as reader:
            data = reader.read_at(0, snapshot.size_bytes)
        sender = SnapshotSender(self, msg, data)
        self._senders[msg.to] = sender
        sender.start()

    def snapshot_send_done(self, peer: str, sender: SnapshotSender, ok: bool) -> None:
        """Tell the core, success or not (``report_snapshot``'s contract, and etcd's
        ReportSnapshot): after a success the leader probes the follower at its next heartbeat
        answer, so a follower that crashed before installing what it received gets it again.
        raft_zmq.node does the same; reporting failures only left a leader waiting for ever for
        a follower that crashed before installing what it received (docs/simulations.md)."""
        if self._senders.get(peer) is sender:
            del self._senders[peer]
        if ok:
            self.stats.snapshots_sent += 1
        core = self.core
        if self.up and core is not None:
            self.call(lambda: core.report_snapshot(peer, ok))

    def deliver_to_core(self, msg: Message) -> None:
        """A snapshot received in full: hand the core its InstallSnapshot."""
        core = self.core
        assert core is not None
        self.call(lambda: core.step(msg))

    def _install_snapshot(self, rd: Ready) -> None:
        """The received snapshot is in the log now; restore the state machine from its file."""
        meta = rd.snapshot
        assert meta is not None and self.snapshots is not None and self.state is not None
        snapshot = self.snapshots.find(meta.index, meta.term)
        assert snapshot is not None, f"the core accepted a snapshot {meta} that was not staged"
        index, term = self.state.restore(snapshot.path)
        assert (index, term) == (meta.index, meta.term), ((index, term), meta)
        self.applied_index = index
        self.snapshots.prune(keep=SNAPSHOT_KEEP)
        self.stats.snapshots_installed += 1
        self.observer.on_snapshot_restored(self, index)
        self.trace.add(self.loop.now_us, f"{self.id} installed snapshot {index}/{term}")
