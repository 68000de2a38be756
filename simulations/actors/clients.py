"""The workload: clients that use the queues as real consumers and producers do.

Each client first creates the run's queues (idempotent), then loops: think, pick an operation
(enqueue, dequeue, ack, nack, touch, update-priority, a queue-info read), send it to a node, and
wait for the answer or its own timeout. It talks to the node that answered it last, now and then
to another; a "no leader" answer is retried elsewhere after a short backoff, and so is an enqueue
whose outcome is unknown when the client chose its ID (the retry is then idempotent). Messages it
dequeued without ``ack`` are held until it acks, nacks or forgets them; it touches some while it
holds them, changes the priority of messages it holds or enqueued (ready, in flight or gone by
then), and sometimes acks one it no longer holds (as a slow consumer would).
"""

from __future__ import annotations

import random

import attrs

from doq.state.results import Dequeued, Enqueued, RejectCode, Rejected
from simulations.checkers.history import History, OpRecord
from simulations.wire import (
    BackupTaken,
    ClientRequest,
    ClientResponse,
    Op,
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
)
from simulations.world.loop import US_PER_MS, EventLoop
from simulations.world.network import Packet, SimNetwork
from simulations.world.profile import WorkloadProfile

GROUPS = ("a", "b", "a.x", "c.y.z")  # fair-queue groups: dotted levels take turns too
DELAYED_PRIORITY_MAX = 9  # small priorities: always due (a priority is a Unix time on a delayed
FAIR_PRIORITY_MAX = 3  # queue, and these are long past)
RETRIES_MAX = 3  # attempts of one operation after a definite failure
BACKOFF_MS_MAX = 100
HELD_MAX = 8  # messages a client holds at once; beyond, it acks before dequeuing more
ENQUEUED_KEPT = 16  # recently enqueued message IDs a client remembers
CLIENT_ID_SHIFT = 32  # client-chosen IDs: (client number + 1) << 32 | sequence
OP_WEIGHTS = (
    ("enqueue", 26),
    ("dequeue", 30),
    ("ack", 18),
    ("nack", 6),
    ("touch", 6),
    ("update_priority", 6),
    ("info", 5),
    ("delete_queue", 1),
    ("stale", 3),  # ack or nack a message this client gave up holding
    ("ids", 2),  # POST /API/v1/ids: IDs to enqueue with later
    ("backup", 1),  # a backup of every queue, kept for a later restore
    ("restore", 1),  # every queue back to this client's last backup (a backup first if none)
)
IDS_PER_CALL_MAX = 5
ID_POOL_MAX = 16  # IDs from /ids a client keeps for its enqueues


@attrs.frozen
class QueueSpec:
    name: str
    fair: bool

    def create_op(self, workload: WorkloadProfile) -> OpCreate:
        return OpCreate(
            self.name,
            self.fair,
            workload.ack_timeout_s,
            workload.max_unacked if self.fair else 0,
            workload.weighted if self.fair else False,
        )


@attrs.define
class _Pending:
    record: OpRecord
    op: Op
    attempt: int


class Client:
    def __init__(
        self,
        number: int,
        *,
        rng: random.Random,
        loop: EventLoop,
        network: SimNetwork,
        history: History,
        workload: WorkloadProfile,
        queues: tuple[QueueSpec, ...],
        nodes: tuple[str, ...],
    ) -> None:
        self.name = f"client-{number}"
        self._number = number
        self._rng = rng
        self._loop = loop
        self._network = network
        self._history = history
        self._workload = workload
        self._queues = queues
        self._nodes = nodes
        self._to_create = list(queues)
        self._held: list[tuple[str, int]] = []  # (queue, message ID) dequeued, not yet settled
        self._released: list[tuple[str, int]] = []  # given up holding (for stale acks)
        self._enqueued: list[tuple[str, int]] = []  # recently enqueued (for priority updates)
        self._id_pool: list[int] = []  # handed out by /ids, not yet enqueued with
        self._backup: BackupTaken | None = None  # the last backup this client took
        self._preferred: str | None = None
        self._pending: _Pending | None = None
        self._sequence = 0
        self.stopped = False
        self._choices = [name for name, _ in OP_WEIGHTS]
        self._weights = [weight for _, weight in OP_WEIGHTS]

    def start(self) -> None:
        self._loop.after(self._rng.randint(0, 20 * US_PER_MS), self._next)

    def stop(self) -> None:
        """Issue no new operation (the one in flight still completes or times out)."""
        self.stopped = True

    @property
    def busy(self) -> bool:
        return self._pending is not None

    def pending_on(self, node: str) -> int | None:
        """The request this client waits on from ``node``, if any."""
        pending = self._pending
        if pending is not None and pending.record.node == node:
            return pending.record.request_id
        return None

    # --- choosing -------------------------------------------------------------------------------
    def _next(self) -> None:
        if self.stopped or self._pending is not None:
            return
        if self._to_create:
            self._send(self._to_create[0].create_op(self._workload), attempt=1)
            return
        self._send(self._choose(), attempt=1)

    def _choose(self) -> Op:
        rng = self._rng
        kind = rng.choices(self._choices, self._weights)[0]
        queue = rng.choice(self._queues)
        if kind == "dequeue" and len(self._held) >= HELD_MAX:
            kind = "ack"
        if kind == "update_priority" and self._enqueued and (not self._held or rng.random() < 0.5):
            name, message_id = rng.choice(self._enqueued)  # ready, in flight, or gone by now
            return OpUpdatePriority(name, message_id, rng.randint(0, self._priority_max(name)))
        if kind in ("ack", "nack", "touch", "update_priority"):
            if self._held:
                return self._on_held(kind)
            kind = "dequeue"  # nothing held: go and get something
        if kind == "stale" and self._released:
            name, message_id = rng.choice(self._released)
            return OpAck(name, message_id) if rng.random() < 0.5 else OpNack(name, message_id)
        if kind == "dequeue":
            return OpDequeue(queue.name, ack=rng.random() < 0.2)
        if kind == "info":
            return OpInfo(queue.name)
        if kind == "delete_queue":
            return OpDeleteQueue(queue.name)
        if kind == "restore" and self._backup is not None:
            return OpRestore(self._backup)
        if kind in ("backup", "restore"):
            return OpBackup()
        if kind == "ids" and len(self._id_pool) < ID_POOL_MAX:
            return OpIds(rng.randint(1, IDS_PER_CALL_MAX))
        return self._enqueue(queue)

    def _on_held(self, kind: str) -> Op:
        rng = self._rng
        index = rng.randrange(len(self._held))
        name, message_id = self._held[index]
        if kind == "touch":
            return OpTouch(name, message_id)
        if kind == "update_priority":
            return OpUpdatePriority(name, message_id, rng.randint(0, self._priority_max(name)))
        self._release(index)
        if kind == "nack":
            return OpNack(name, message_id, rng.randint(0, self._priority_max(name)))
        return OpAck(name, message_id)

    def _release(self, index: int) -> None:
        self._released.append(self._held.pop(index))
        del self._released[:-HELD_MAX]

    def _priority_max(self, queue: str) -> int:
        fair = any(q.fair for q in self._queues if q.name == queue)
        return FAIR_PRIORITY_MAX if fair else DELAYED_PRIORITY_MAX

    def _enqueue(self, queue: QueueSpec) -> OpEnqueue:
        rng = self._rng
        self._sequence += 1
        client_id = None
        if rng.random() < self._workload.client_id_rate:
            client_id = ((self._number + 1) << CLIENT_ID_SHIFT) | self._sequence
        elif self._id_pool and rng.random() < 0.5:
            client_id = self._id_pool.pop(0)  # an ID from /ids: handed out to this client alone
        return OpEnqueue(
            queue.name,
            f"{self.name}:{self._sequence}",
            rng.randint(0, self._priority_max(queue.name)),
            rng.choice(GROUPS) if queue.fair else "default",
            client_id,
        )

    # --- talking --------------------------------------------------------------------------------
    def _pick_node(self) -> str:
        if self._preferred is not None and self._rng.random() < 0.8:
            return self._preferred
        return self._rng.choice(self._nodes)

    def _send(self, op: Op, attempt: int) -> None:
        node = self._pick_node()
        record = self._history.invoke(self.name, op, self._loop.now_us, node, attempt)
        self._pending = _Pending(record, op, attempt)
        self._network.send(self.name, node, ClientRequest(record.request_id, self.name, op))
        timeout_us = self._workload.request_timeout_ms * US_PER_MS
        self._loop.after(timeout_us, self._timeout, record.request_id)

    def on_packet(self, packet: Packet) -> None:
        response = packet.payload
        assert isinstance(response, ClientResponse), response
        pending = self._pending
        if pending is None or pending.record.request_id != response.request_id:
            return  # an answer after the timeout: the client has moved on
        self._pending = None
        self._history.complete(
            response.request_id, response.outcome, response.result, self._loop.now_us
        )
        if response.outcome is Outcome.OK:
            self._preferred = packet.src
            self._settled(pending.op, response)
            self._think()
        elif response.outcome is Outcome.FAILED:
            self._preferred = None
            self._retry(pending)
        else:
            self._unknown(pending)

    def _timeout(self, request_id: int) -> None:
        pending = self._pending
        if pending is None or pending.record.request_id != request_id:
            return
        self._pending = None
        self._preferred = None
        self._history.complete(request_id, Outcome.UNKNOWN, None, self._loop.now_us)
        self._unknown(pending)

    def _settled(self, op: Op, response: ClientResponse) -> None:
        if isinstance(op, OpCreate) and self._to_create and self._to_create[0].name == op.queue:
            self._to_create.pop(0)
        result = response.result
        if isinstance(result, Rejected) and result.code is RejectCode.QUEUE_NOT_FOUND:
            spec = next(q for q in self._queues if q.name == op.queue)
            if spec not in self._to_create:
                self._to_create.append(spec)  # deleted (by anyone): create it again
        if isinstance(op, OpDequeue) and not op.ack and isinstance(result, Dequeued):
            self._held.extend((op.queue, m.id) for m in result.messages)
        elif isinstance(op, OpBackup) and isinstance(result, BackupTaken):
            self._backup = result
        elif isinstance(op, OpIds) and isinstance(result, tuple):
            self._id_pool.extend(result)
        elif isinstance(op, OpEnqueue) and isinstance(result, Enqueued):
            self._enqueued.extend((op.queue, m.id) for m in result.messages)
            del self._enqueued[:-ENQUEUED_KEPT]

    def _unknown(self, pending: _Pending) -> None:
        op = pending.op
        if isinstance(op, OpEnqueue) and op.client_id is not None:
            self._retry(pending)  # the same ID again: idempotent
        else:
            self._think()

    def _retry(self, pending: _Pending) -> None:
        if self.stopped:
            return
        if pending.attempt >= RETRIES_MAX:
            self._think()  # creating the queues is retried by _next until it succeeds
            return
        backoff_us = self._rng.randint(1, BACKOFF_MS_MAX) * US_PER_MS
        self._loop.after(backoff_us, self._resend, pending.op, pending.attempt + 1)

    def _resend(self, op: Op, attempt: int) -> None:
        if not self.stopped and self._pending is None:
            self._send(op, attempt)

    def _think(self) -> None:
        if self.stopped:
            return
        think_us = self._rng.randint(0, self._workload.think_max_ms) * US_PER_MS
        self._loop.after(think_us, self._next)
