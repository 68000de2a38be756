"""The queue service of one simulated node: the leader's path of a request, and forwarding.

It does what doq/service.py and doq's HTTP layer do, in callbacks instead of tasks:
- on the leader, the first write of each term waits for a ReadIndex barrier (the new leader has
  applied everything its predecessors committed); a node's first leadership has its node number
  assigned through the log (``AssignNodeNumber``, doq/state/identity.py) before it hands out an
  ID; then the ID generator's floor is raised above the state's. Every write is stamped with the
  node's own clock (skewed, drifting) clamped into the window its peers' clocks allow
  (doq/clockbound.py, the same ``PeerClocks`` as production, fed by simulated probes of each
  voter's clock as doq/peerclock.py does over HTTP); without a majority's estimate a write waits
  ``CLOCK_ESTIMATE_WAIT_S_MAX`` and then answers "unavailable". Enqueues get IDs from the node's
  generator, whose clock is shifted as the last stamp was; the command is proposed and the
  answer is the result this node's state machine returned when it applied the entry;
- a read (queue info, a backup: the state machine's snapshot file) is served after a ReadIndex
  barrier; a restore is a write (``RestoreState``) like the others;
- on a follower, the request is forwarded to the leader it knows and the answer relayed; with no
  leader known, the client is told so (nothing was proposed).
- ``POST /API/v1/ids`` as doq/service.py's ``generate_ids``: IDs from the generator, handed out
  only once the replicated floor covers them (``ReserveIds`` a block ahead when it does not);
  every ID a generator makes is shown to the ID checker (simulations/checkers/ids.py).
What the client can tell apart is what an HTTP client can: an answer, "not the leader / no
leader" (nothing was done), or "unavailable" and silence (the outcome is unknown).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from doq.clockbound import PeerClocks, Window
from doq.commands import (
    Ack,
    AssignNodeNumber,
    Command,
    CreateQueue,
    DeleteQueue,
    Dequeue,
    Enqueue,
    Nack,
    NewMessage,
    QueueType,
    ReserveIds,
    RestoreState,
    Strategy,
    Touch,
    UpdatePriority,
    encode_command,
)
from doq.ids import (
    ID_EPOCH_MS,
    ID_NODE_MAX,
    ID_SEQUENCE_MAX,
    ID_TIME_MS_MAX,
    IdGenerator,
    compose_id,
)
from doq.peerclock import CLOCK_PROBE_INTERVAL_S, CLOCK_PROBE_RETRY_S
from doq.service import CLOCK_ESTIMATE_POLL_S, CLOCK_ESTIMATE_WAIT_S_MAX, ID_RESERVE_AHEAD_MS
from doq.state.results import NodeNumberAssigned, RejectCode, Rejected
from simulations.actors.node import SimNode
from simulations.checkers.ids import IdUniqueness
from simulations.wire import (
    BackupTaken,
    ClientRequest,
    ClientResponse,
    ClockProbe,
    ClockReply,
    Forward,
    ForwardReply,
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
from simulations.world.loop import US_PER_MS, US_PER_S
from simulations.world.network import Packet, SimNetwork

FORWARDS_MAX = 10_000  # forwarded requests awaiting the leader's answer, per node
FORWARD_TIMEOUT_US = 500 * US_PER_MS  # then the client is told "unavailable" (outcome unknown)

Reply = Callable[[ClientResponse], None]
ProposedHook = Callable[[int, int, int], None]  # (request_id, index, term)


class SimService:
    def __init__(
        self,
        node: SimNode,
        network: SimNetwork,
        on_proposed: ProposedHook,
        ids_checker: IdUniqueness,
        plants: frozenset[str] = frozenset(),
    ) -> None:
        self.node = node
        self._ids_checker = ids_checker
        self._plants = plants
        self.clamped_stamps = 0  # over every life of the node, like a metric
        self.network = network
        self._on_proposed = on_proposed
        node.packet_handler = self.on_packet
        self.reset()

    def reset(self) -> None:
        """A (re)started process: nothing of the previous life's memory is left."""
        node = self.node
        self._ids: IdGenerator | None = None  # made once the node number is known
        self._no_number: Rejected | None = None  # why the log assigned none (all are taken)
        self._correction_ms = 0  # the last stamp minus the node's own clock at that moment
        self._prepared_term = -1
        self.peer_clocks = PeerClocks(plants=self._plants)
        # request ID -> (the client to relay the answer to, the leader it was forwarded to)
        self._forwards: dict[int, tuple[str, str]] = {}
        node.loop.after(0, self._probe_clocks, node.generation)

    # --- the clock ------------------------------------------------------------------------------
    def _mono_ms(self) -> int:
        return self.node.loop.now_us // US_PER_MS

    def _probe_clocks(self, generation: int) -> None:
        """doq/peerclock.py's loop: ask every other voter its clock, every second (every 100 ms
        while a majority's estimate is missing)."""
        node = self.node
        if generation != node.generation:
            return
        voters = node.core.config.voters if node.up and node.core is not None else frozenset()
        if voters and not node.paused:
            self.peer_clocks.forget_others(voters - {node.id})
            for voter in sorted(voters - {node.id}):
                self._send(voter, ClockProbe(node.clock_ms()))
        short = self.clock_window() is None
        interval_s = (
            min(CLOCK_PROBE_INTERVAL_S, CLOCK_PROBE_RETRY_S) if short else CLOCK_PROBE_INTERVAL_S
        )
        node.loop.after(int(interval_s * US_PER_S), self._probe_clocks, generation)

    def clock_window(self) -> Window | None:
        """The command times the voters' clocks allow now (None: no majority estimate yet)."""
        node = self.node
        if node.core is None:
            return None
        voters = node.core.config.voters
        return self.peer_clocks.window(node.clock_ms(), self._mono_ms(), voters, node.id)

    def _bounded_now(self, then: Callable[[int], None], fail: Callable[[], None]) -> None:
        """doq/service.py's ``_bounded_now``: the node's clock clamped into the window; wait
        (polling) up to CLOCK_ESTIMATE_WAIT_S_MAX for a window, then ``fail``."""
        node, generation = self.node, self.node.generation
        deadline_us = node.loop.now_us + int(CLOCK_ESTIMATE_WAIT_S_MAX * US_PER_S)

        def attempt() -> None:
            if generation != node.generation:
                return
            window = self.clock_window()
            if window is None:
                if node.loop.now_us >= deadline_us:
                    fail()
                else:
                    node.loop.after(int(CLOCK_ESTIMATE_POLL_S * US_PER_S), attempt)
                return
            own_ms = node.clock_ms()
            stamp_ms = window.clamp(own_ms)
            if stamp_ms != own_ms:
                self.clamped_stamps += 1
            self._correction_ms = stamp_ms - own_ms
            then(stamp_ms)

        attempt()

    def _id_clock_ms(self) -> int:
        return self.node.clock_ms() + self._correction_ms

    # --- traffic --------------------------------------------------------------------------------
    def on_packet(self, packet: Packet) -> None:
        payload = packet.payload
        if isinstance(payload, ClientRequest):
            self._handle(payload, self._reply_to_client(payload.client))
        elif isinstance(payload, Forward):
            origin = payload.origin
            self._serve(payload.request, lambda r: self._send(origin, ForwardReply(r)))
        elif isinstance(payload, ClockProbe):
            self._send(packet.src, ClockReply(payload.sent_ms, self.node.clock_ms()))
        elif isinstance(payload, ClockReply):
            received_ms = self.node.clock_ms()
            self.peer_clocks.record(
                packet.src, payload.sent_ms, payload.peer_ms, received_ms, self._mono_ms()
            )
        elif isinstance(payload, ForwardReply):
            forward = self._forwards.pop(payload.response.request_id, None)
            if forward is not None:
                self._send(forward[0], payload.response)

    def peer_down(self, node_id: str) -> None:
        """``node_id`` crashed: the forwarded requests it held are answered "unavailable" (the
        HTTP connection to it was reset; they may or may not have been proposed)."""
        for request_id, (client, leader) in list(self._forwards.items()):
            if leader == node_id:
                del self._forwards[request_id]
                response = ClientResponse(request_id, Outcome.UNKNOWN, detail="leader reset")
                self._send(client, response)

    def _forward_timeout(self, request_id: int, generation: int) -> None:
        if generation != self.node.generation:
            return
        forward = self._forwards.pop(request_id, None)
        if forward is not None:
            response = ClientResponse(request_id, Outcome.UNKNOWN, detail="leader timed out")
            self._send(forward[0], response)

    def _send(self, dst: str, payload: Any) -> None:
        self.network.send(self.node.id, dst, payload, duplicable=False)

    def _reply_to_client(self, client: str) -> Reply:
        return lambda response: self._send(client, response)

    def _handle(self, request: ClientRequest, reply: Reply) -> None:
        node = self.node
        if node.is_leader:
            self._serve(request, reply)
            return
        leader = node.leader_id
        if leader is None or leader == node.id:
            reply(ClientResponse(request.request_id, Outcome.FAILED, detail="no leader"))
            return
        if len(self._forwards) >= FORWARDS_MAX:
            reply(ClientResponse(request.request_id, Outcome.FAILED, detail="busy"))
            return
        self._forwards[request.request_id] = (request.client, leader)
        self._send(leader, Forward(request, node.id))
        node.loop.after(
            FORWARD_TIMEOUT_US, self._forward_timeout, request.request_id, node.generation
        )

    # --- the leader's path ----------------------------------------------------------------------
    def _serve(self, request: ClientRequest, reply: Reply) -> None:
        node = self.node
        if not node.is_leader:
            detail = f"not the leader (leader: {node.leader_id})"
            reply(ClientResponse(request.request_id, Outcome.FAILED, detail=detail))
            return
        if isinstance(request.op, OpInfo | OpBackup):
            self._read_info(request, reply)
        else:
            self._stamp(request, reply)

    def _read_info(self, request: ClientRequest, reply: Reply) -> None:
        node, generation = self.node, self.node.generation
        queue = getattr(request.op, "queue", "")

        def barrier_done(outcome: str, _value: Any) -> None:
            if generation != node.generation:
                return
            if outcome != "ok":
                reply(ClientResponse(request.request_id, Outcome.FAILED, detail="not the leader"))
                return
            assert node.state is not None
            if isinstance(request.op, OpBackup):
                reply(ClientResponse(request.request_id, Outcome.OK, self._backup()))
                return
            info = node.state.queue_info(queue)
            result: Any = info
            if info is None:
                result = Rejected(RejectCode.QUEUE_NOT_FOUND, f"queue {queue} not found")
            reply(ClientResponse(request.request_id, Outcome.OK, result))

        node.read_barrier(barrier_done)

    def _backup(self) -> BackupTaken:
        """doq/service.py's ``backup_at``: the state machine's snapshot file, read back."""
        assert self.node.state is not None
        path = os.path.join(self.node.directory, "backup.snap")
        index, _term = self.node.state.snapshot(path)
        with open(path, "rb") as f:
            return BackupTaken(index, f.read())

    def _stamp(self, request: ClientRequest, reply: Reply) -> None:
        """doq/service.py's ``_stamp``: the first write of a term catches up first (and the
        node's first leadership has its number assigned); every write is stamped within the
        window of its peers' clocks."""
        node = self.node
        assert node.core is not None
        term, generation = node.core.term, node.generation

        def unavailable() -> None:
            detail = "no clock estimate from a majority of the voters"
            reply(ClientResponse(request.request_id, Outcome.UNKNOWN, detail=detail))

        def write() -> None:
            self._bounded_now(lambda ts: self._write(request, ts, reply), unavailable)

        if self._prepared_term == term:
            write()
            return

        def prepared() -> None:
            assert node.state is not None
            if self._ids is not None:
                self._ids.raise_floor(node.state.id_floor())
            self._prepared_term = term
            write()

        def barrier_done(outcome: str, _value: Any) -> None:
            if generation != node.generation:
                return
            if outcome != "ok":
                reply(ClientResponse(request.request_id, Outcome.FAILED, detail="not the leader"))
                return
            if self._ids is not None or self._no_number is not None:
                prepared()
            else:
                self._node_number(prepared, request, reply)

        node.read_barrier(barrier_done)

    def _node_number(self, then: Callable[[], None], request: ClientRequest, reply: Reply) -> None:
        """doq/service.py's ``_node_number``: this node's number in message IDs, assigned
        through the log on first need (an earlier life's assignment is in the state)."""
        node, generation = self.node, self.node.generation
        assert node.state is not None
        number = node.state.node_number(node.id)
        if number is not None:
            self._ids = IdGenerator(number, self._id_clock_ms)
            then()
            return

        def assigned(outcome: str, value: Any) -> None:
            if generation != node.generation:
                return
            if outcome != "ok":  # as doq answers 503: the request itself was not proposed
                detail = f"node number not assigned: {outcome}"
                reply(ClientResponse(request.request_id, Outcome.UNKNOWN, detail=detail))
                return
            if isinstance(value, NodeNumberAssigned) and self._ids is None:
                self._ids = IdGenerator(value.number, self._id_clock_ms)
            elif isinstance(value, Rejected):  # every number taken: no IDs from this node
                self._no_number = value
            then()

        def propose(ts: int) -> None:
            node.propose(encode_command(AssignNodeNumber(ts, node.id)), assigned, None)

        def unavailable() -> None:
            detail = "no clock estimate from a majority of the voters"
            reply(ClientResponse(request.request_id, Outcome.UNKNOWN, detail=detail))

        self._bounded_now(propose, unavailable)

    def _write(self, request: ClientRequest, ts_ms: int, reply: Reply) -> None:
        node = self.node
        if not node.is_leader:  # lost leadership while waiting for the clock window
            detail = f"not the leader (leader: {node.leader_id})"
            reply(ClientResponse(request.request_id, Outcome.FAILED, detail=detail))
            return
        if node.driver is not None and node.driver.storage_blocked:  # doq's 507: nothing done
            detail = "insufficient storage: a write is waiting for room"
            reply(ClientResponse(request.request_id, Outcome.FAILED, detail=detail))
            return
        if isinstance(request.op, OpIds):
            self._hand_out_ids(request, ts_ms, reply)
            return
        refusal = self._ids_refusal(request.op)
        if refusal is not None:
            reply(ClientResponse(request.request_id, Outcome.OK, refusal))
            return
        command = self._command(request.op, ts_ms)
        request_id = request.request_id

        def done(outcome: str, value: Any) -> None:
            if outcome == "ok":
                reply(ClientResponse(request_id, Outcome.OK, value))
            elif outcome == "not_leader":
                reply(ClientResponse(request_id, Outcome.FAILED, detail=f"leader: {value}"))
            else:  # dropped, lost, leadership lost: doq answers 503, the outcome is unknown
                reply(ClientResponse(request_id, Outcome.UNKNOWN, detail=f"{outcome}: {value}"))

        def proposed(index: int, term: int) -> None:
            self._on_proposed(request_id, index, term)

        node.propose(encode_command(command), done, proposed)

    def _ids_refusal(self, op: Op) -> Rejected | None:
        """doq/service.py's ``_generator``: with no node number, what needs an ID is refused."""
        needs_id = isinstance(op, OpIds) or (isinstance(op, OpEnqueue) and op.client_id is None)
        if needs_id and self._ids is None:
            return self._no_number or Rejected(RejectCode.CONFLICT, "no node number yet")
        return None

    def _hand_out_ids(self, request: ClientRequest, ts_ms: int, reply: Reply) -> None:
        """doq/service.py's ``generate_ids``: the generator's next IDs, handed out once the
        replicated floor covers them, raised a block ahead through the log when it does not."""
        node, request_id = self.node, request.request_id
        assert isinstance(request.op, OpIds) and node.state is not None
        refusal = self._ids_refusal(request.op)
        if refusal is not None:
            reply(ClientResponse(request_id, Outcome.OK, refusal))
            return
        assert self._ids is not None
        ids = tuple(self._ids.next_ids(request.op.count))
        self._ids_checker.on_generated(node.id, ids)
        if ids[-1] <= node.state.id_floor():
            reply(ClientResponse(request_id, Outcome.OK, ids))
            return
        ahead_ms = min(ts_ms - ID_EPOCH_MS + ID_RESERVE_AHEAD_MS, ID_TIME_MS_MAX)
        block = compose_id(max(ahead_ms, 0), ID_NODE_MAX, ID_SEQUENCE_MAX)

        def reserved(outcome: str, value: Any) -> None:
            if outcome == "ok":
                reply(ClientResponse(request_id, Outcome.OK, ids))
            elif outcome == "not_leader":
                reply(ClientResponse(request_id, Outcome.FAILED, detail=f"leader: {value}"))
            else:  # doq answers 503; these IDs were not handed out
                reply(ClientResponse(request_id, Outcome.UNKNOWN, detail=f"{outcome}: {value}"))

        command = ReserveIds(ts_ms, max(ids[-1], block))
        node.propose(encode_command(command), reserved, None)

    def _command(self, op: Op, ts: int) -> Command:
        if isinstance(op, OpCreate):
            queue_type = QueueType.FAIR if op.fair else QueueType.DELAYED
            strategy = None
            if op.fair:
                strategy = Strategy.WEIGHTED if op.weighted else Strategy.ROUND_ROBIN
            return CreateQueue(ts, op.queue, queue_type, op.ack_timeout_s, strategy, op.max_unacked)
        if isinstance(op, OpEnqueue):
            assert self._ids is not None
            message_id = op.client_id
            if message_id is None:
                message_id = self._ids.next_id()
                self._ids_checker.on_generated(self.node.id, (message_id,))
            message = NewMessage(message_id, op.priority, op.content, op.group)
            return Enqueue(ts, op.queue, (message,))
        if isinstance(op, OpDequeue):
            return Dequeue(ts, op.queue, 1, op.ack)
        if isinstance(op, OpAck):
            return Ack(ts, op.queue, op.id)
        if isinstance(op, OpNack):
            return Nack(ts, op.queue, op.id, op.priority)
        if isinstance(op, OpTouch):
            return Touch(ts, op.queue, op.id)
        if isinstance(op, OpUpdatePriority):
            return UpdatePriority(ts, op.queue, op.id, op.priority)
        if isinstance(op, OpDeleteQueue):
            return DeleteQueue(ts, op.queue)
        if isinstance(op, OpRestore):
            return RestoreState(ts, op.backup.data)
        raise AssertionError(f"not a write: {op!r}")
