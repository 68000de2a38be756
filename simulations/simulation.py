"""One seeded run of a whole doq cluster: build it, fault it, heal it, check it.

The run has three phases. For ``time_s`` of virtual time the clients work and the fault schedule
strikes, while the Raft and replica checkers watch every event. Then every fault heals and the
cluster must show it is live
(simulations/checkers/liveness.py). Last, the end checks: every replica holds
the same state, every acknowledged enqueue is accounted for, and each queue's client history is
linearizable. The first violation stops the run; it is reported with the seed, the invariant and
the trace lines before it. Any exception is a finding too (the core's and the state machine's
assertions included), reported the same way.

Every node keeps its files (LMDB state, snapshot files) under one temporary directory, on tmpfs
when there is one (/dev/shm): the run neither needs nor measures a disk's speed, since the Raft
log's disk is simulated. The directory is removed at the end of the run.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import traceback
from collections import Counter
from typing import Any

import attrs

from doq.state.identity import PLANT_NODE_NUMBER_BY_HASH
from doq.state.results import Enqueued
from raft_zmq.core.ready import CoreOptions, SoftState
from raft_zmq.core.types import ClusterConfig, Entry, Server, Suffrage
from raft_zmq.driver.plants import PLANT_SNAPSHOT_WRITTEN_UNCHECKED
from raft_zmq.recovery import PLANT_RESTORE_NEWEST_SNAPSHOT
from raft_zmq.storage import StorageCorruptError
from simulations import plants as plant_list
from simulations.actors.clients import Client, QueueSpec
from simulations.actors.node import SimNode
from simulations.actors.operator import Operator
from simulations.actors.service import SimService
from simulations.checkers.backups import BackupReader, model_state
from simulations.checkers.clock_bound import ClockBound
from simulations.checkers.history import History, OpRecord
from simulations.checkers.ids import IdUniqueness
from simulations.checkers.linearizability import HistoryOp, SearchResult, check, result_key
from simulations.checkers.liveness import (
    LIVENESS_BOUND_S,
    READ_ANSWER_S_MAX,
    Prober,
    cluster_settled,
    describe_nodes,
    hung_reads,
    members,
)
from simulations.checkers.model import Call, QueueKind, State
from simulations.checkers.queue_safety import (
    STATE_DIGEST_STRIDE,
    QueueSafety,
    ReplicaAgreement,
    state_digest,
)
from simulations.checkers.raft_safety import RaftSafety, Violation
from simulations.trace import Trace
from simulations.wire import (
    ClientRequest,
    ClientResponse,
    Forward,
    ForwardReply,
    OpAck,
    OpBackup,
    OpCreate,
    OpDeleteQueue,
    OpDequeue,
    OpEnqueue,
    OpIds,
    OpInfo,
    OpNack,
    OpRestore,
    OpTouch,
    OpUpdatePriority,
    Outcome,
    describe_op,
)
from simulations.world.clock import NodeClock
from simulations.world.disk import CompletedWrite, PendingWrite, SimLog
from simulations.world.faults import FaultScheduler
from simulations.world.loop import US_PER_S, EventLoop
from simulations.world.network import Packet, SimNetwork
from simulations.world.profile import MembershipProfile, Profile, draw_profile
from simulations.world.rng import derive

DEFAULT_TIME_S = 20.0
CORRUPT_RATE = 0.1  # fault crashes in operator seeds that leave the last log entry corrupt
NODE_PLANTS = frozenset(
    {PLANT_SNAPSHOT_WRITTEN_UNCHECKED, PLANT_RESTORE_NEWEST_SNAPSHOT, PLANT_NODE_NUMBER_BY_HASH}
)
QUEUES = (QueueSpec("delayed", fair=False), QueueSpec("fair", fair=True))
SHM_DIR = "/dev/shm"


@attrs.frozen
class RunConfig:
    seed: int
    nodes: int | None = None  # None: drawn from the seed
    time_s: float = DEFAULT_TIME_S
    plants: frozenset[str] = frozenset()
    keep_trace: bool = False
    far_clock_ms: int | None = None  # None: drawn from the seed (profile.py); 0: none
    snapshot_write_us: int | None = None  # None: drawn from the seed (profile.py)
    membership: MembershipProfile | None = None  # None: drawn from the seed (profile.py)

    def __attrs_post_init__(self) -> None:
        for name in self.plants:
            plant_list.plant(name)  # raises for an unknown name
        assert self.nodes is None or self.nodes >= 1, self.nodes
        assert self.time_s > 0, self.time_s


@attrs.frozen
class RunResult:
    seed: int
    nodes: int
    profile: str
    plants: tuple[str, ...]
    sim_seconds: float
    events: int
    trace_digest: str
    faults: dict[str, int]
    stats: dict[str, int]
    invariant: str | None = None
    detail: str = ""
    violation_s: float = 0.0
    trace_tail: tuple[str, ...] = ()
    trace: tuple[str, ...] | None = None

    @property
    def ok(self) -> bool:
        return self.invariant is None

    @property
    def faults_injected(self) -> int:
        return sum(self.faults.values())


class _Observer:
    """Connects the nodes' events to the checkers (simulations/actors/node.py's NodeObserver)."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.raft = RaftSafety(sim.nodes)
        self.agreement = ReplicaAgreement()
        self.queues = QueueSafety(sim.backups)
        self.clocks = ClockBound(lambda node_id: sim.nodes[node_id].clock_ms())

    def on_soft_state(self, node: SimNode, soft: SoftState) -> None:
        assert node.core is not None
        self.raft.on_soft_state(node.id, soft, node.core)

    def on_leader_ready(self, node: SimNode, term: int) -> None:
        if self.sim.faults is not None:
            self.sim.faults.on_new_leader(node.id, term)

    def on_persisted(self, node: SimNode, write: PendingWrite, done: CompletedWrite) -> None:
        self.raft.on_persisted(node.id, write, done)

    def on_commit_advanced(self, node: SimNode, entries: list[Entry]) -> None:
        assert node.core is not None
        self.raft.on_committed(node.id, node.core.term, tuple(entries))

    def on_committed(self, node: SimNode, entries: tuple[Entry, ...]) -> None:
        assert node.core is not None
        self.raft.on_committed(node.id, node.core.term, entries)
        if node.is_leader and self.sim.faults is not None:
            self.sim.faults.on_leader_commit(node.id, node.core.term)

    def on_applied(self, node: SimNode, entries: tuple[Entry, ...], results: list[Any]) -> None:
        now = self.sim.loop.now_us
        for entry, result in self.agreement.on_applied(node.id, entries, results, now):
            self.queues.on_entry(entry, result)
            self.clocks.on_entry(entry)
        if entries[-1].index % STATE_DIGEST_STRIDE == 0:
            self._compare_state(node, entries[-1].index)

    def on_restore_started(self, node: SimNode) -> None:
        if self.sim.faults is not None:
            self.sim.faults.on_restore_started(node.id)

    def on_snapshot_restored(self, node: SimNode, index: int) -> None:
        if index % STATE_DIGEST_STRIDE == 0:
            self._compare_state(node, index)

    def on_snapshot_staged(self, node: SimNode) -> None:
        if self.sim.faults is not None:
            self.sim.faults.on_snapshot_staged(node.id)

    def _compare_state(self, node: SimNode, index: int) -> None:
        assert node.state is not None
        digest = state_digest(node.state, os.path.join(node.directory, "digest.snap"))
        self.agreement.on_state(node.id, index, digest)


class Simulation:
    def __init__(self, config: RunConfig) -> None:
        self.config = config
        profile = draw_profile(config.seed, config.nodes)
        if config.far_clock_ms is not None:
            clocks = attrs.evolve(profile.clocks, far_offset_ms=config.far_clock_ms)
            profile = attrs.evolve(profile, clocks=clocks)
        if config.snapshot_write_us is not None:
            raft = attrs.evolve(profile.raft, snapshot_write_us=config.snapshot_write_us)
            profile = attrs.evolve(profile, raft=raft)
        if config.membership is not None:
            profile = attrs.evolve(profile, membership=config.membership)
        self.profile: Profile = profile
        self.loop = EventLoop()
        self.trace = Trace(keep_all=config.keep_trace)
        self.history = History()
        self.ids_checker = IdUniqueness()
        self.backups = BackupReader()  # what each restored backup holds (for the checkers)
        self.nodes: dict[str, SimNode] = {}  # filled by _build; the checkers hold this dict
        self.observer = _Observer(self)
        self.stats: Counter[str] = Counter()
        self.services: dict[str, SimService] = {}
        self.clients: dict[str, Client | Prober] = {}
        self.faults: FaultScheduler | None = None
        self.ids = self.profile.node_names()
        self.founders = self.ids[: self.profile.nodes]
        self.operator: Operator | None = None
        self.retired: set[str] = set()
        self._corrupt_rng = derive(config.seed, "corrupt")
        self.network = SimNetwork(
            self.loop,
            derive(config.seed, "network"),
            self.profile.network,
            self.trace,
            self.ids,
            self._deliver,
        )

    # --- the run --------------------------------------------------------------------------------
    def run(self) -> RunResult:
        root = tempfile.mkdtemp(prefix="doq-sim-", dir=SHM_DIR if os.path.isdir(SHM_DIR) else None)
        self.backups.directory = root
        violation: Violation | None = None
        try:
            self._build(root)
            try:
                self._work()
                self._heal_and_wait()
                self._end_checks()
            except Violation as exc:
                violation = exc
            except Exception as exc:  # an assertion or error of the code under test (or ours)
                violation = _as_violation(exc)
        finally:
            for node in self.nodes.values():
                node.close()
            shutil.rmtree(root, ignore_errors=True)
        return self._result(violation)

    def _build(self, root: str) -> None:
        p, seed = self.profile, self.config.seed
        self.trace.add(0, f"seed {seed}: {p.describe()}")
        ids = self.ids
        first_learner = len(self.founders) - p.membership.learners
        config = ClusterConfig(
            tuple(
                Server(i, f"{i}:9000", Suffrage.VOTER if n < first_learner else Suffrage.NONVOTER)
                for n, i in enumerate(self.founders)
            )
        )
        if not p.membership.mean_gap_ms:
            self.observer.raft.static_voters = config.voters
        core_plants = frozenset(name for name in self.config.plants if plant_list.plant(name).core)
        core_options = CoreOptions(
            append_bytes_max=p.raft.append_bytes_max,
            inflight_appends_max=p.raft.inflight_appends_max,
            plants=core_plants,
        )
        redelivery = plant_list.PLANT_REDELIVERY_BY_LOCAL_CLOCK in self.config.plants
        clock_rng = derive(seed, "clocks")
        for node_id in ids:
            offset_ms = clock_rng.randint(-p.clocks.offset_max_ms, p.clocks.offset_max_ms)
            drift = clock_rng.uniform(-p.clocks.drift_max, p.clocks.drift_max)
            node = SimNode(
                node_id,
                os.path.join(root, node_id),
                config,
                loop=self.loop,
                network=self.network,
                trace=self.trace,
                observer=self.observer,
                clock=NodeClock(offset_ms, drift),
                core_options=core_options,
                raft=p.raft,
                disk_profile=p.disk,
                disk_rng=derive(seed, f"disk:{node_id}"),
                core_rng=derive(seed, f"core:{node_id}"),
                redelivery_by_local_clock=redelivery,
                apply_boundary=STATE_DIGEST_STRIDE,
                plants=self.config.plants & NODE_PLANTS,
                joining=node_id not in self.founders,
            )
            self.nodes[node_id] = node
            self.services[node_id] = SimService(
                node, self.network, self.history.on_proposed, self.ids_checker, self.config.plants
            )
            node.start()
        if p.clocks.far_offset_ms:  # one node's clock far off: drawn apart, the rest unchanged
            far_id = derive(seed, "far-clock").choice(ids)
            self.nodes[far_id].clock.step(p.clocks.far_offset_ms)
        for number in range(p.workload.clients):
            client = Client(
                number,
                rng=derive(seed, f"client:{number}"),
                loop=self.loop,
                network=self.network,
                history=self.history,
                workload=p.workload,
                queues=QUEUES,
                nodes=ids,
            )
            self.clients[client.name] = client
        if p.membership.mean_gap_ms:
            self.operator = Operator(
                self.loop,
                derive(seed, "operator"),
                self.trace,
                self.nodes,
                p.membership.mean_gap_ms,
                self._retire,
            )
        self.faults = FaultScheduler(
            self.loop,
            derive(seed, "faults"),
            p.faults,
            self.trace,
            self.nodes,
            self.network,
            self._fault_crash,
            self._restart,
        )

    def _deliver(self, packet: Packet) -> None:
        node = self.nodes.get(packet.dst)
        if node is not None:
            if node.up:
                node.deliver(packet)
            else:
                self._refuse(packet)
            return
        client = self.clients.get(packet.dst)
        if client is not None:
            client.on_packet(packet)

    def _refuse(self, packet: Packet) -> None:
        """HTTP to a node that is down: the connection is refused at once (nothing was done)."""
        payload = packet.payload
        if isinstance(payload, ClientRequest):
            refused = ClientResponse(payload.request_id, Outcome.FAILED, detail="refused")
            self.network.send(packet.dst, packet.src, refused, duplicable=False)
        elif isinstance(payload, Forward):
            refused = ClientResponse(payload.request.request_id, Outcome.FAILED, detail="refused")
            self.network.send(packet.dst, packet.src, ForwardReply(refused), duplicable=False)

    def _crash(self, node_id: str) -> None:
        """Kill a node: the HTTP connections to it are reset, so whoever waits on it learns that
        the outcome of its request is unknown."""
        self.nodes[node_id].crash()
        self.network.crashed(node_id)
        for client in self.clients.values():
            request_id = client.pending_on(node_id)
            if request_id is not None:
                reset = ClientResponse(request_id, Outcome.UNKNOWN, detail="connection reset")
                self.network.send(node_id, client.name, reset, duplicable=False)
        for other_id, service in self.services.items():
            if other_id != node_id:
                service.peer_down(node_id)

    def _wipe(self, node_id: str) -> None:
        """``doq repair``'s move aside: the node's files go; it starts again empty, to join."""
        node = self.nodes[node_id]
        if node.up:
            self._crash(node_id)
        shutil.rmtree(node.directory, ignore_errors=True)
        node.disk = SimLog()
        self.trace.add(self.loop.now_us, f"{node_id} wiped, starting empty to rejoin")
        self._restart(node_id)

    def _retire(self, node_id: str) -> None:
        """Removed from the cluster: stopped for good (simulations/actors/operator.py)."""
        self.retired.add(node_id)
        self.trace.add(self.loop.now_us, f"{node_id} retired")
        if self.nodes[node_id].up:
            self._crash(node_id)

    def _fault_crash(self, node_id: str) -> None:
        """A crash of the fault schedule; in seeds with an operator, now and then it leaves the
        node's last log entry corrupt, if the voters are enough to remove it (finding 6)."""
        self._crash(node_id)
        operator, node = self.operator, self.nodes[node_id]
        if operator is None or operator.repairing or self._corrupt_rng.random() >= CORRUPT_RATE:
            return
        if any(n.disk.corrupt_last for n in self.nodes.values()):
            return  # one at a time (a crash of several nodes would corrupt them all at once)
        leader = next((n for n in self.nodes.values() if n.is_leader), None)
        if leader is not None and leader.core is not None:
            voters = leader.core.config.voters
            if len(voters) >= 3 and leader.core.config.get(node_id) is not None:
                node.disk.corrupt_last = True
                self.trace.add(self.loop.now_us, f"FAULT {node_id}'s last log entry is corrupt")
                self.stats["corruptions"] += 1

    def _restart(self, node_id: str) -> None:
        if node_id in self.retired:
            return
        try:
            self.nodes[node_id].start()
        except StorageCorruptError as exc:  # it refuses to start: the operator repairs it
            self.trace.add(self.loop.now_us, f"{node_id} refuses to start: {exc}")
            assert self.operator is not None
            self.operator.repair(node_id, self._wipe)
            return
        self.services[node_id].reset()

    def _work(self) -> None:
        assert self.faults is not None
        for client in self.clients.values():
            client.start()
        self.faults.start()
        if self.operator is not None:
            self.operator.start()
        self.loop.run_until(int(self.config.time_s * US_PER_S))

    def _heal_and_wait(self) -> None:
        """Heal everything, probe, and wait (boundedly) for the cluster to settle."""
        assert self.faults is not None
        self.faults.stop()
        if self.operator is not None:
            self.operator.stop()
        for client in self.clients.values():
            client.stop()
        self.network.heal()
        for node_id, node in self.nodes.items():
            node.disk_full_until_us = 0  # room again: a waiting write or apply goes through
            if node_id in self.retired:
                continue
            if not node.up:
                self._restart(node_id)
            elif node.paused:
                node.resume()
        self.heal_us = self.loop.now_us
        self.trace.add(self.loop.now_us, "HEAL: every fault is over")
        prober = Prober(
            QUEUES[0].create_op(self.profile.workload),
            rng=derive(self.config.seed, "probe"),
            loop=self.loop,
            network=self.network,
            history=self.history,
            nodes=tuple(self.nodes),
        )
        self.clients[prober.name] = prober
        prober.start()

        def live() -> bool:
            clients_idle = not any(c.busy for c in self.clients.values() if isinstance(c, Client))
            return prober.done_us is not None and clients_idle and cluster_settled(self.nodes)

        deadline_us = self.heal_us + LIVENESS_BOUND_S * US_PER_S
        if not self.loop.run_until(deadline_us, live):
            probe = "done" if prober.done_us else f"not done after {prober.attempts} tries"
            raise Violation(
                "liveness",
                f"{LIVENESS_BOUND_S} s after healing the cluster has not settled (probe {probe}): "
                + describe_nodes(self.nodes),
            )
        self.stats["recovery_ms"] = (self.loop.now_us - self.heal_us) // 1000
        settled_us = self.loop.now_us
        if hung_reads(self.nodes, settled_us) and not self.loop.run_until(
            settled_us + READ_ANSWER_S_MAX * US_PER_S,
            lambda: not hung_reads(self.nodes, self.loop.now_us),
        ):
            raise Violation(
                "reads answered",
                f"{READ_ANSWER_S_MAX} s after the cluster settled, reads still wait: "
                f"{hung_reads(self.nodes, self.loop.now_us)}; {describe_nodes(self.nodes)}",
            )

    # --- end checks -----------------------------------------------------------------------------
    def _end_checks(self) -> None:
        dumps = {i: node.state.logical_dump() for i, node in members(self.nodes).items()}  # type: ignore[union-attr]
        reference_id, reference = next(iter(dumps.items()))
        for node_id, dump in dumps.items():
            if dump != reference:
                raise Violation(
                    "replicas agree",
                    f"after settling, {node_id} and {reference_id} hold different queue states",
                )
        final = _final_messages(reference)
        acknowledged = [
            (r.op.queue, r.result.messages[0].id, r.request_id)
            for r in self.history.records
            if isinstance(r.op, OpEnqueue)
            and r.outcome is Outcome.OK
            and isinstance(r.result, Enqueued)
        ]
        stored = {(queue, m[0]) for queue, (_, messages) in final.items() for m in messages}
        self.observer.queues.check_acknowledged(acknowledged, stored)
        self._check_ids_handed_out()
        self._check_linearizable(final)

    def _check_ids_handed_out(self) -> None:
        """Every ID answered to a client (by /ids, or chosen by the service for an enqueue) is
        answered once (simulations/checkers/ids.py)."""
        for r in self.history.records:
            if r.outcome is not Outcome.OK:
                continue
            label = f"#{r.request_id} {r.client}"
            if isinstance(r.op, OpIds) and isinstance(r.result, tuple):
                self.ids_checker.on_handed_out(r.result, label)
            elif (
                isinstance(r.op, OpEnqueue)
                and r.op.client_id is None
                and isinstance(r.result, Enqueued)
            ):
                self.ids_checker.on_handed_out((m.id for m in r.result.messages), label)

    def _check_linearizable(self, final: dict[str, tuple[bool, list[tuple]]]) -> None:
        histories = self._histories(final)
        for spec in QUEUES:
            kind = QueueKind(spec.fair, self.profile.workload.max_unacked if spec.fair else 0)
            ops = histories[spec.name]
            outcome: SearchResult = check(kind, ops)
            self.stats["linearizability_ops"] += len(ops)
            self.stats["linearizability_states"] += outcome.states
            if outcome.inconclusive:
                self.stats["linearizability_inconclusive"] += 1
            elif not outcome.ok:
                raise Violation("linearizability", f"queue {spec.name}: {outcome.detail}")

    def _histories(self, final: dict[str, tuple[bool, list[tuple]]]) -> dict[str, list[HistoryOp]]:
        out: dict[str, list[HistoryOp]] = {spec.name: [] for spec in QUEUES}
        for record in self.history.records:
            if isinstance(record.op, OpIds | OpBackup):
                continue  # no queue's business (simulations/checkers/ids.py checks the IDs)
            if isinstance(record.op, OpRestore):  # every queue at once
                contents = self.backups.contents(record.op.backup.data)
                for spec in QUEUES:
                    op = self._modelled(record, model_state(contents.get(spec.name)))
                    if op is not None:
                        out[spec.name].append(op)
                continue
            op = self._modelled(record)
            if op is not None:
                out[record.op.queue].append(op)
        end_us = self.loop.now_us + 1
        for name, (exists, messages) in final.items():
            if name in out:
                key = ("final", exists, tuple(messages))
                out[name].append(HistoryOp(end_us, end_us, Call("final"), key, "final state"))
        return out

    def _modelled(self, record: OpRecord, restored: State | None = None) -> HistoryOp | None:
        """One operation for the linearizability check: as the client saw it, or resolved from
        the committed log when the client never learnt its outcome
        (simulations/checkers/history.py)."""
        if record.outcome is Outcome.FAILED:
            return None  # definitely not done
        label = f"#{record.request_id} {record.client} {describe_op(record.op)}"
        if record.outcome is Outcome.OK:
            result, return_us = record.result, record.response_us
            return _history_op(record.op, result, record.invoke_us, return_us, label, restored)
        if isinstance(record.op, OpInfo):
            return None  # a read without an answer did nothing
        raft, agreement = self.observer.raft, self.observer.agreement
        fate = self.history.fate(record.request_id, raft.committed, agreement.applied)
        if not fate.known:
            self.stats["ops_unresolved"] += 1
            return _history_op(record.op, None, record.invoke_us, None, label, restored)
        if not fate.took_effect:
            self.stats["ops_resolved_not_done"] += 1
            return None
        self.stats["ops_resolved_done"] += 1
        return _history_op(
            record.op, fate.result, record.invoke_us, fate.applied_us, label, restored
        )

    # --- the report -----------------------------------------------------------------------------
    def _result(self, violation: Violation | None) -> RunResult:
        stats = Counter(self.stats)
        records = self.history.records
        stats["ops"] = sum(1 for r in records if r.client.startswith("client-"))
        for outcome in Outcome:
            stats[f"ops_{outcome.value}"] = sum(1 for r in records if r.outcome is outcome)
        stats["ops_pending"] = sum(1 for r in records if r.outcome is None)
        stats["elections"] = len(self.observer.raft.leaders)
        if self.operator is not None:
            for action, count in self.operator.done.items():
                stats[f"membership_{action}"] = count
            stats["membership_retired"] = len(self.retired)
        stats["commit_index"] = self.observer.raft.commit_index
        stats["clock_checked"] = self.observer.clocks.checked
        stats["ids_generated"] = self.ids_checker.generated
        stats["ids_handed_out"] = self.ids_checker.handed_out
        stats["stamps_clamped"] = sum(s.clamped_stamps for s in self.services.values())
        for node in self.nodes.values():
            for name, value in attrs.asdict(node.stats).items():
                stats[name] += value
            stats["writes_lost"] += node.disk.writes_lost
        for name, value in attrs.asdict(self.network.stats).items():
            stats[f"net_{name}"] = value
        tail = self.trace.tail()
        return RunResult(
            seed=self.config.seed,
            nodes=self.profile.nodes,
            profile=self.profile.describe(),
            plants=tuple(sorted(self.config.plants)),
            sim_seconds=self.loop.now_us / US_PER_S,
            events=self.loop.events_run,
            trace_digest=self.trace.digest(),
            faults=dict(sorted(self.faults.injected.items())) if self.faults else {},
            stats=dict(sorted(stats.items())),
            invariant=violation.invariant if violation else None,
            detail=violation.detail if violation else "",
            violation_s=self.loop.now_us / US_PER_S if violation else 0.0,
            trace_tail=tuple(tail) if violation else (),
            trace=tuple(self.trace.lines) if self.trace.lines is not None else None,
        )


def _as_violation(exc: Exception) -> Violation:
    frames = traceback.extract_tb(exc.__traceback__)
    where = ", ".join(f"{os.path.basename(f.filename)}:{f.lineno}" for f in frames[-3:])
    kind = "assertion" if isinstance(exc, AssertionError) else f"exception {type(exc).__name__}"
    return Violation(kind, f"{exc} (at {where})")


def _history_op(
    op: Any,
    result: Any,
    call_us: int,
    return_us: int | None,
    label: str,
    restored: State | None = None,
) -> HistoryOp | None:
    """The model's view of one client operation; None when it cannot be modelled (an enqueue
    whose ID the leader chose and nobody learnt)."""
    key = None if result is None else result_key(result)
    if isinstance(op, OpCreate):
        call = Call("create")
    elif isinstance(op, OpEnqueue):
        message_id = op.client_id
        if message_id is None and key is not None:
            # the ID the leader chose; a rejected enqueue (its queue deleted) stored nothing
            message_id = key[1] if key[0] == "enqueued" else 0
        if message_id is None:
            return None
        call = Call("enqueue", message_id, op.priority, op.group, op.content)
    elif isinstance(op, OpDequeue):
        call = Call("dequeue", ack=op.ack)
    elif isinstance(op, OpAck):
        call = Call("ack", op.id)
    elif isinstance(op, OpNack):
        call = Call("nack", op.id, op.priority)
    elif isinstance(op, OpTouch):
        call = Call("touch", op.id)
    elif isinstance(op, OpUpdatePriority):
        call = Call("update_priority", op.id, op.priority)
    elif isinstance(op, OpDeleteQueue):
        call = Call("delete")
    elif isinstance(op, OpRestore):
        call = Call("restore", restored=restored)
    else:
        assert isinstance(op, OpInfo), op
        call = Call("info")
    return HistoryOp(call_us, return_us, call, key, label)


def _final_messages(dump: dict[str, Any]) -> dict[str, tuple[bool, list[tuple]]]:
    """Per queue name: (exists, [(id, priority, content, in flight)] sorted by ID), from a
    logical dump of the state."""
    names = {record.queue_id: record.name for _key, record in dump["queues"]}
    out: dict[str, tuple[bool, list[tuple]]] = {
        spec.name: (spec.name in names.values(), []) for spec in QUEUES
    }
    for (queue_id, message_id), record in dump["messages"]:
        name = names[queue_id]
        out[name][1].append((message_id, record.priority, record.content, record.in_flight))
    for _, messages in out.values():
        messages.sort()
    return out
