"""The queue service: the path of one request from the API to the replicated log and back.

A write, on the leader: the API has validated the body; ``_stamp`` takes the leader's clock and
(for enqueue) message IDs from the leader's generator; the command is encoded and proposed to the
Raft node, where it joins the next group commit; once a majority holds it durably every node
applies it, and the result this node's state machine returned is the answer.

A read is linearizable: a ReadIndex barrier (leadership confirmed by a majority, the local state
applied up to the commit index), then the local LMDB state. So every request is the leader's to
serve; on a follower the service raises ``NotLeaderError`` naming the leader and its HTTP
address, and the HTTP layer forwards the request there.

The first write of each term waits for the new leader to apply everything its predecessors
committed and raises the ID generator's floor above every ID the state holds, so a leader whose
clock lags never reuses an ID (doq/ids.py). A node's first leadership also has its node number
assigned through the log (``AssignNodeNumber``) before it hands out any ID, and the IDs that
``generate_ids`` hands out are first covered by a reservation (``ReserveIds``) that raises the
replicated floor ``ID_RESERVE_AHEAD_MS`` ahead, so that a later leader (this node after a restart
included, whatever its clock says) starts above them, at one Raft round per block and not per
call (doq/state/identity.py). When all 1024 node numbers are taken, the node logs that it hands
out no IDs and refuses just the requests that need one (``RejectedError``, CONFLICT).

A command's time is the leader's clock clamped into the window its peers' clocks allow
(doq/clockbound.py): never more than ``CLOCK_AHEAD_MS_MAX`` ahead of a majority of the voters'
clocks, so one leader with a fast clock cannot fix the queue's clock in the future. IDs carry the
same clamped time. Before a majority of voters has a clock estimate, a write waits for one (at most
``CLOCK_ESTIMATE_WAIT_S_MAX``), then answers 503.

A write is admitted only while the node's disk has room (doq/diskguard.py): short of its reserve,
the leader refuses writes with ``InsufficientStorageError`` (507) and keeps serving reads.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import trio

from doq.clockbound import PeerClocks, Window
from doq.commands import (
    Ack,
    AckMany,
    AssignNodeNumber,
    Command,
    CreateQueue,
    DeleteMessage,
    DeleteQueue,
    Dequeue,
    Enqueue,
    ExpireDue,
    InFlightItem,
    Nack,
    NackItem,
    NackMany,
    NewMessage,
    QueueType,
    ReserveIds,
    RestoreState,
    Strategy,
    Touch,
    TouchMany,
    UpdatePriority,
    UpdateQueue,
    encode_command,
)
from doq.diskguard import DiskGuard
from doq.ids import (
    ID_EPOCH_MS,
    ID_NODE_MAX,
    ID_SEQUENCE_MAX,
    ID_TIME_MS_MAX,
    IdGenerator,
    compose_id,
)
from doq.membership import encode_metadata, http_address, suffrage_name
from doq.quotas import Quotas
from doq.reachability import answers_at
from doq.state.machine import QueueStateMachine
from doq.state.results import NodeNumberAssigned, QueueInfo, RejectCode, Rejected, Result
from raft_zmq.core.ready import ConfigChangeRejected, NotLeader, ProposalDropped, ProposalTooLarge
from raft_zmq.node import LeadershipLost, NodeStopped, ProposalLost, RaftNode

logger = logging.getLogger("doq.service")

DEFAULT_ACK_TIMEOUT_S = 1800  # --queue.default_acknowledgement_timeout
UNAVAILABLE_RETRY_AFTER_S = 1
# How far past the leader's clock one reservation covers: one Raft round per 10 s of /ids use,
# and at most this far ahead of the clock the next leader's IDs start (well under the state's
# ID_FLOOR_FUTURE_MS_MAX, so its IDs still raise the floor).
ID_RESERVE_AHEAD_MS = 10_000
INSUFFICIENT_STORAGE_RETRY_AFTER_S = 30  # room is made by an operator, not in a second
OVER_LIMIT_RETRY_AFTER_S = 5  # a queue over its cap drains at the consumers' pace
CLOCK_ESTIMATE_WAIT_S_MAX = 3.0  # a write waits this long for a majority's clock estimates
CLOCK_ESTIMATE_POLL_S = 0.02


class ServiceError(Exception):
    """A request the service cannot serve; the HTTP layer maps each kind to a status."""


class NotLeaderError(ServiceError):
    """Only the leader serves requests; forward to ``leader_http`` (None when no leader is known
    or it never published its HTTP address)."""

    def __init__(self, leader_id: str | None, leader_http: str | None) -> None:
        super().__init__(f"not the leader (leader: {leader_id or 'unknown'})")
        self.leader_id = leader_id
        self.leader_http = leader_http


class UnavailableError(ServiceError):
    """Try again later: no leader, leadership lost mid-request (the outcome of a write is then
    unknown), the leader is shedding load, or the node is stopping."""

    def __init__(self, detail: str, retry_after_s: int = UNAVAILABLE_RETRY_AFTER_S) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


class NotProposedError(UnavailableError):
    """The leader refused the proposal for now (a leadership transfer, a full backlog, a pending
    configuration change): nothing entered the log, so the write certainly did not happen."""


class InsufficientStorageError(ServiceError):
    """The node's disk is short of its reserve: writes are refused until room is made."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.retry_after_s = INSUFFICIENT_STORAGE_RETRY_AFTER_S


class OverLimitError(ServiceError):
    """A configured cap on queues or messages (doq/quotas.py) refuses the write."""

    retry_after_s = OVER_LIMIT_RETRY_AFTER_S


class TooLargeError(ServiceError):
    """The command is larger than one log entry may be."""


class RejectedError(ServiceError):
    """The state machine refused the command (same answer on every replica)."""

    def __init__(self, rejected: Rejected) -> None:
        super().__init__(rejected.detail)
        self.code = rejected.code
        self.detail = rejected.detail


@attrs.frozen
class MessageInput:
    """A message as the API hands it over: ``id`` None means "assign one"."""

    priority: int
    content: str
    id: int | None = None
    group: str = "default"
    metadata: dict[str, str] | None = None


@attrs.frozen
class NodeStatus:
    """One node's own Raft figures (``role``: follower, candidate, leader, ...)."""

    id: str
    role: str
    term: int
    leader: str | None
    commit_index: int
    applied_index: int
    last_index: int


@attrs.frozen
class Backup:
    """A backup's bytes and its version: the Raft log index whose state it holds."""

    index: int
    data: bytes


@attrs.frozen
class ServerInfo:
    id: str
    raft_address: str
    http_address: str | None
    suffrage: str
    is_leader: bool


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def trio_monotonic_ms() -> int:
    return int(trio.current_time() * 1000)


class QueueService:
    def __init__(
        self,
        raft: RaftNode,
        state: QueueStateMachine,
        *,
        http_address: str,
        default_ack_timeout_s: int = DEFAULT_ACK_TIMEOUT_S,
        clock_ms: Callable[[], int] = wall_clock_ms,
        monotonic_ms: Callable[[], int] = trio_monotonic_ms,
        disk: DiskGuard | None = None,
        peer_clocks: PeerClocks | None = None,
        quotas: Quotas | None = None,
    ) -> None:
        self.raft = raft
        self.quotas = quotas if quotas is not None else Quotas()
        self.state = state
        self.disk = disk if disk is not None else DiskGuard(state.path)
        self.http_address = http_address
        self.default_ack_timeout_s = default_ack_timeout_s
        self._clock_ms = clock_ms
        self.monotonic_ms = monotonic_ms
        self.peer_clocks = peer_clocks if peer_clocks is not None else PeerClocks()
        self.clamped_stamps = 0  # command times the peers' clocks moved (a metric)
        self._correction_ms = 0  # the last stamp minus our clock then: IDs get the same shift
        self._ids: IdGenerator | None = None  # made once the log has assigned a node number
        self._no_number: Rejected | None = None  # why the log assigned none (all are taken)
        self._prepared_term = -1
        self._prepare_lock = trio.Lock()
        self._reserve_lock = trio.Lock()
        # Called with each write this leader committed and its result (doq/longpoll.py wakes
        # waiting dequeues from it).
        self.on_commit: list[Callable[[Command, Result], None]] = []

    # --- queues --------------------------------------------------------------------------------
    async def create_queue(
        self,
        name: str,
        queue_type: QueueType,
        *,
        strategy: Strategy | None = None,
        max_unacked: int = 0,
        ack_timeout_s: int | None = None,
    ) -> Result:
        ts = await self._stamp()
        if self.quotas.queues_max:
            refusal = self.quotas.queue_refusal(len(self.state.list_queues()))
            if refusal is not None:
                raise OverLimitError(refusal)
        timeout = ack_timeout_s if ack_timeout_s is not None else self.default_ack_timeout_s
        return await self._write(CreateQueue(ts, name, queue_type, timeout, strategy, max_unacked))

    async def update_queue(
        self,
        name: str,
        *,
        strategy: Strategy | None = None,
        max_unacked: int | None = None,
        ack_timeout_s: int | None = None,
    ) -> Result:
        ts = await self._stamp()
        return await self._write(UpdateQueue(ts, name, strategy, max_unacked, ack_timeout_s))

    async def delete_queue(self, name: str) -> Result:
        return await self._write(DeleteQueue(await self._stamp(), name))

    async def queue_info(self, name: str) -> QueueInfo:
        await self._read_barrier()
        info = self.state.queue_info(name)
        if info is None:
            raise RejectedError(Rejected(RejectCode.QUEUE_NOT_FOUND, f"queue {name} not found"))
        return info

    async def list_queues(self) -> list[QueueInfo]:
        await self._read_barrier()
        return self.state.list_queues()

    # --- messages ------------------------------------------------------------------------------
    async def enqueue(self, queue: str, messages: Sequence[MessageInput]) -> Result:
        ts = await self._stamp()
        if self.quotas.messages_per_queue_max:
            refusal = self.quotas.messages_refusal(self.state.queue_info(queue), len(messages))
            if refusal is not None:
                raise OverLimitError(refusal)
        new = tuple(
            NewMessage(
                id=m.id if m.id is not None else self._generator().next_id(),
                priority=m.priority,
                content=m.content,
                group=m.group,
                metadata=m.metadata,
            )
            for m in messages
        )
        return await self._write(Enqueue(ts, queue, new))

    async def dequeue(self, queue: str, *, ack: bool, count: int = 1) -> Result:
        return await self._write(Dequeue(await self._stamp(), queue, count, ack))

    def next_due_ms(self, queue: str) -> int | None:
        """When something of ``queue`` comes due by time alone (this replica's state)."""
        return self.state.next_due_ms(queue)

    def clock_ms(self) -> int:
        """The time this leader would stamp a command with now: its clock clamped into the
        window its peers' clocks allow (its own clock while it has no estimate yet), so that
        waits for due times (doq/longpoll.py, doq/expiry.py) use the clock commands carry."""
        own_ms = self._clock_ms()
        window = self.clock_window()
        return own_ms if window is None else window.clamp(own_ms)

    async def get_message(self, queue: str, message_id: int) -> Any:
        await self._read_barrier()
        found = self.state.get_message(queue, message_id)
        if isinstance(found, Rejected):
            raise RejectedError(found)
        return found

    async def peek(self, queue: str, limit: int) -> list[Any]:
        """Up to ``limit`` ready messages, taking none (the admin UI's view of a queue)."""
        await self._read_barrier()
        found = self.state.peek(queue, limit)
        if isinstance(found, Rejected):
            raise RejectedError(found)
        return found

    async def ack(self, queue: str, message_id: int, delivery: int | None = None) -> Result:
        """``delivery``: the one a receipt names (refused when that delivery is over)."""
        return await self._write(Ack(await self._stamp(), queue, message_id, delivery))

    async def nack(
        self,
        queue: str,
        message_id: int,
        priority: int,
        metadata: dict[str, str] | None,
        delivery: int | None = None,
    ) -> Result:
        ts = await self._stamp()
        return await self._write(Nack(ts, queue, message_id, priority, metadata, delivery))

    async def touch(self, queue: str, message_id: int, delivery: int | None = None) -> Result:
        return await self._write(Touch(await self._stamp(), queue, message_id, delivery))

    async def ack_many(self, queue: str, items: Sequence[InFlightItem]) -> Result:
        """Ack each item in one command; one result per item (``ManyResults``)."""
        return await self._write(AckMany(await self._stamp(), queue, tuple(items)))

    async def nack_many(self, queue: str, items: Sequence[NackItem]) -> Result:
        return await self._write(NackMany(await self._stamp(), queue, tuple(items)))

    async def touch_many(self, queue: str, items: Sequence[InFlightItem]) -> Result:
        return await self._write(TouchMany(await self._stamp(), queue, tuple(items)))

    async def expire_due(self, queue: str) -> Result:
        """Return ``queue``'s messages whose ack deadline passed to ready (doq/expiry.py)."""
        return await self._write(ExpireDue(await self._stamp(), queue))

    async def update_priority(self, queue: str, message_id: int, priority: int) -> Result:
        ts = await self._stamp()
        return await self._write(UpdatePriority(ts, queue, message_id, priority))

    async def delete_message(self, queue: str, message_id: int) -> Result:
        return await self._write(DeleteMessage(await self._stamp(), queue, message_id))

    async def generate_ids(self, count: int) -> list[int]:
        """IDs from the leader's generator: unique cluster-wide, above every stored ID, and at or
        below the replicated floor before they are handed out (see the module docstring)."""
        await self._stamp()
        ids = self._generator().next_ids(count)
        if ids and ids[-1] > self.state.id_floor():
            await self._reserve_ids(ids[-1])
        return ids

    # --- backup and restore --------------------------------------------------------------------
    async def backup(self) -> bytes:
        """A consistent snapshot of the queue state as of a linearizable point."""
        return (await self.backup_at()).data

    async def backup_at(self) -> Backup:
        """``backup`` with the log index it holds everything up to (its version)."""
        await self._read_barrier()
        fd, path = tempfile.mkstemp(prefix="doq-backup-")
        os.close(fd)
        try:
            index, _ = await trio.to_thread.run_sync(self.state.snapshot, path)
            with open(path, "rb") as f:
                return Backup(index, f.read())
        finally:
            os.unlink(path)

    async def restore(self, snapshot: bytes) -> Result:
        """Replace the whole cluster's state with a backup, through the log (every replica
        restores at the same index)."""
        return await self._write(RestoreState(await self._stamp(), snapshot))

    # --- cluster -------------------------------------------------------------------------------
    def servers(self) -> list[ServerInfo]:
        core = self.raft.core
        if core is None:
            return []
        leader = core.leader
        return [
            ServerInfo(
                id=s.id,
                raft_address=s.address,
                http_address=http_address(s),
                suffrage=suffrage_name(s),
                is_leader=s.id == leader,
            )
            for s in core.config.servers
        ]

    def leader(self) -> ServerInfo | None:
        return next((s for s in self.servers() if s.is_leader), None)

    async def wait_leader_change(self) -> None:
        """Until this node's role, term or known leader next changes; for ever once the node has
        stopped (nothing changes any more)."""
        try:
            await self.raft.wait_role_change()
        except NodeStopped:
            await trio.sleep_forever()

    async def join(
        self,
        node_id: str,
        raft_address: str,
        node_http: str | None,
        *,
        replace_unreachable: bool = False,
    ) -> None:
        """Add a server (as a non-voter first, promoted once caught up). Idempotent. An existing
        member keeps its Raft address unless ``replace_unreachable`` says to move it and nothing
        answers at its current one (doq/reachability.py); else the join is refused (409)."""
        self._require_leader()
        existing = self.raft.server(node_id)
        if existing is not None and existing.address != raft_address:
            await self._check_move(node_id, existing.address, raft_address, replace_unreachable)
        if node_http is None and existing is not None:
            node_http = http_address(existing)
        metadata = encode_metadata(node_http) if node_http else ""
        try:
            await self.raft.add_voter(node_id, raft_address, metadata)
        except NotLeader as exc:
            raise self._not_leader(exc.leader) from None
        except ConfigChangeRejected as exc:
            raise RejectedError(Rejected(RejectCode.CONFLICT, str(exc))) from None
        except (LeadershipLost, NodeStopped) as exc:
            raise UnavailableError(str(exc)) from None

    async def _check_move(
        self, node_id: str, current: str, wanted: str, replace_unreachable: bool
    ) -> None:
        refusal = f"{node_id} is a member at {current}; a join with another address ({wanted})"
        if not replace_unreachable:
            raise RejectedError(
                Rejected(
                    RejectCode.CONFLICT,
                    f"{refusal} is refused: remove it first, or, if it is gone for good from "
                    "that address, join again with replace_unreachable: true",
                )
            )
        if await answers_at(current):  # the leader's own address answers: it listens there
            raise RejectedError(
                Rejected(RejectCode.CONFLICT, f"{refusal} is refused: it answers at {current}")
            )

    async def leave(self, node_id: str) -> None:
        self._require_leader()
        if self.raft.server(node_id) is None:
            return
        try:
            await self.raft.remove_server(node_id)
        except NotLeader as exc:
            raise self._not_leader(exc.leader) from None
        except ConfigChangeRejected as exc:
            raise RejectedError(Rejected(RejectCode.CONFLICT, str(exc))) from None
        except (LeadershipLost, NodeStopped) as exc:
            raise UnavailableError(str(exc)) from None

    async def transfer_leadership(self, node_id: str) -> None:
        """Ask this node, the leader, to hand over to voter ``node_id``; returns once asked (the
        handover itself takes a round or two)."""
        self._require_leader()
        target = self.raft.server(node_id)
        if target is None or suffrage_name(target) != "Voter":
            raise RejectedError(
                Rejected(RejectCode.CONFLICT, f"{node_id} is not a voter of this cluster")
            )
        if node_id == self.raft.node_id:
            return  # already leads
        try:
            await self.raft.transfer_leadership(node_id)
        except NotLeader as exc:
            raise self._not_leader(exc.leader) from None
        except NodeStopped as exc:
            raise UnavailableError(str(exc)) from None

    def node_status(self) -> NodeStatus:
        """This node's own view of Raft: answered locally (the admin UI asks every member)."""
        core = self.raft.core
        if core is None:
            raise UnavailableError("the node is not running")
        return NodeStatus(
            id=self.raft.node_id,
            role=core.role.value,
            term=core.term,
            leader=core.leader,
            commit_index=core.log.committed,
            applied_index=self.raft.applied_index,
            last_index=core.log.last_index(),
        )

    async def publish_own_address(self) -> None:
        """Make sure the configuration holds this node's current HTTP address (the first node
        of a cluster, or a node restarted on another port). Leader only; a follower's address
        is written by the leader when it joins."""
        me = self.raft.server(self.raft.node_id)
        if me is None or http_address(me) == self.http_address:
            return
        await self.join(self.raft.node_id, me.address, self.http_address)

    # --- plumbing ------------------------------------------------------------------------------
    def is_ready(self) -> bool:
        """/readyz: a leader is known and everything known committed is applied here (the
        disk's room is ``storage_short``'s to say)."""
        core = self.raft.core
        if core is None or core.leader is None:
            return False
        return self.raft.applied_index >= core.log.committed

    def storage_short(self) -> bool:
        """The node refuses writes for want of room: its disk is below the reserve (read now, not
        cached), or a store already failed a write for want of room and the Raft driver is
        retrying it (``RaftNode.storage_blocked``, docs/raft.md "When the disk is full")."""
        return self.disk.check() or self.raft.storage_blocked

    def _require_leader(self) -> None:
        if not self.raft.is_leader:
            raise self._not_leader(self.raft.leader_id)

    def _not_leader(self, leader_id: str | None) -> NotLeaderError:
        leader_http = http_address(self.raft.server(leader_id)) if leader_id else None
        return NotLeaderError(leader_id, leader_http)

    async def _read_barrier(self) -> None:
        self._require_leader()
        try:
            await self.raft.read_barrier()
        except NotLeader as exc:
            raise self._not_leader(exc.leader) from None
        except NodeStopped as exc:
            raise UnavailableError(str(exc)) from None

    async def _stamp(self) -> int:
        """The leader's time for a new command, bounded by its peers' clocks; on the first write
        of a term, first catch up with everything committed and raise the ID floor above the
        state's."""
        self._require_leader()
        core = self.raft.core
        assert core is not None
        if self._prepared_term != core.term:
            await self._prepare_term(core.term)
        return await self._bounded_now()

    async def _bounded_now(self) -> int:
        """This node's clock clamped into the window its peers' clocks allow: the time of every
        command it proposes (the state's clock follows command times, so none may escape it)."""
        window = await self._clock_window()
        own_ms = self._clock_ms()
        stamp_ms = window.clamp(own_ms)
        if stamp_ms != own_ms:
            self.clamped_stamps += 1
        self._correction_ms = stamp_ms - own_ms
        return stamp_ms

    async def _prepare_term(self, term: int) -> None:
        async with self._prepare_lock:  # one preparation per term, whoever asks first
            if self._prepared_term == term:
                return
            await self._read_barrier()
            if self._ids is None and self._no_number is None:
                number = await self._node_number()
                if number is not None:
                    self._ids = IdGenerator(number, self._id_clock_ms)
            if self._ids is not None:
                self._ids.raise_floor(self.state.id_floor())
            self._prepared_term = term

    async def _node_number(self) -> int | None:
        """This node's number in message IDs, assigned through the log on first need; None when
        every number is taken (the refusal is kept in ``_no_number`` and logged: this node then
        hands out no ID, and serves every request that needs none)."""
        number = self.state.node_number(self.raft.node_id)
        if number is not None:
            return number
        ts = await self._bounded_now()
        try:
            result = await self._write(AssignNodeNumber(ts, self.raft.node_id))
        except RejectedError as exc:  # numbers are never freed: the refusal stands
            self._no_number = Rejected(exc.code, f"this node has no node number: {exc.detail}")
            logger.error(
                "%s refuses to hand out message IDs (enqueue without an ID, POST /API/v1/ids): "
                "%s; enqueues with IDs of the client's own still work",
                self.raft.node_id,
                exc.detail,
            )
            return None
        if not isinstance(result, NodeNumberAssigned):
            raise TypeError(f"AssignNodeNumber answered {result!r}")
        return result.number

    def _generator(self) -> IdGenerator:
        """The ID generator ``_stamp`` made, or the refusal it recorded instead."""
        if self._ids is not None:
            return self._ids
        refusal = self._no_number or Rejected(RejectCode.CONFLICT, "no node number yet")
        raise RejectedError(refusal)

    async def _reserve_ids(self, highest: int) -> None:
        """Raise the replicated ID floor to at least ``highest``, a block ahead of the clock."""
        async with self._reserve_lock:  # callers waiting here are often covered by the first
            if highest <= self.state.id_floor():
                return
            ts = await self._bounded_now()
            ahead_ms = min(ts - ID_EPOCH_MS + ID_RESERVE_AHEAD_MS, ID_TIME_MS_MAX)
            block = compose_id(max(ahead_ms, 0), ID_NODE_MAX, ID_SEQUENCE_MAX)
            await self._write(ReserveIds(ts, max(highest, block)))

    # --- the clock -----------------------------------------------------------------------------
    def local_clock_ms(self) -> int:
        """This node's own clock, unbounded: what /API/v1/cluster/time answers."""
        return self._clock_ms()

    def clock_window(self) -> Window | None:
        """The command times the voters' clocks allow now (None: no majority estimate yet)."""
        core = self.raft.core
        if core is None:
            return None
        voters = core.config.voters
        return self.peer_clocks.window(
            self._clock_ms(), self.monotonic_ms(), voters, self.raft.node_id
        )

    def clock_skews_ms(self) -> dict[str, int]:
        """Each voter's clock minus ours, as last measured (fresh ones only)."""
        return self.peer_clocks.skews_ms(self.monotonic_ms())

    async def _clock_window(self) -> Window:
        with trio.move_on_after(CLOCK_ESTIMATE_WAIT_S_MAX):
            while (window := self.clock_window()) is None:
                await trio.sleep(CLOCK_ESTIMATE_POLL_S)
            return window
        raise UnavailableError(
            "no clock estimate from a majority of the voters yet (doq/clockbound.py)"
        )

    def _id_clock_ms(self) -> int:
        """The generator's clock: shifted as the last stamp was (every ID is generated right
        after a stamp), so that IDs carry the command's bounded time and count for the floor."""
        return self._clock_ms() + self._correction_ms

    async def _write(self, command: Command) -> Result:
        if not self.disk.admit_write():
            raise InsufficientStorageError(
                f"writes refused: {self.disk.free_bytes} bytes free on this node's disk, below "
                f"its reserve of {self.disk.reserve_bytes} (reads still work)"
            )
        if self.raft.storage_blocked:
            self.disk.refused_writes += 1
            raise InsufficientStorageError(
                "writes refused: a write of this node's log or state failed for want of room and"
                " is being retried (reads still work)"
            )
        try:
            result = await self.raft.propose(encode_command(command))
        except NotLeader as exc:
            raise self._not_leader(exc.leader) from None
        except ProposalTooLarge as exc:
            raise TooLargeError(str(exc)) from None
        except ProposalDropped as exc:
            raise NotProposedError(str(exc)) from None
        except (LeadershipLost, ProposalLost, NodeStopped) as exc:
            raise UnavailableError(str(exc)) from None
        if isinstance(result, Rejected):
            raise RejectedError(result)
        for listener in self.on_commit:
            listener(command, result)
        return result
