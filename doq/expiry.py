"""Counts that do not go stale: the leader returns expired in-flight messages to ready by itself.

The state machine has no clock; an in-flight message whose ack deadline passed becomes ready at the
next command on its queue (docs/state-machine.md, "Expiry"), so with no consumer a queue's counts
showed it unacked for ever. ``Expirer`` runs on every node and acts while the node leads: it
sleeps until the earliest deadline the state holds (plus ``EXPIRY_GRACE_MS``, so that deadlines
close together are returned by one command), then proposes an ``ExpireDue`` per queue whose
deadline has passed, stamped with the leader's clock like every command. Replicas therefore stay
identical (no node decides expiry by its own timer), and a message shows as ready again within
about ``EXPIRY_GRACE_MS`` of its deadline.

Woken by events, never by polling: a commit that may bring a deadline earlier than the one it
sleeps for (a delivery, a touch, a settings change, a restore: ``QueueService.on_commit``) and
a change of role (``RaftNode.wait_role_change``).
"""

from __future__ import annotations

import logging
import math

import trio

from doq.commands import Command, Dequeue, RestoreState, Touch, TouchMany, UpdateQueue
from doq.service import QueueService, ServiceError
from doq.state.results import Result
from raft_zmq.node import NodeStopped, RaftNode

EXPIRY_GRACE_MS = 250  # after the earliest deadline: what comes due meanwhile goes in one command
EXPIRY_RETRY_PAUSE_S = 0.5  # after a proposal that failed (no quorum, a leader change)
MS_PER_S = 1000
_MAY_BRING_A_DEADLINE_FORWARD = (Dequeue, Touch, TouchMany, UpdateQueue, RestoreState)

log = logging.getLogger("doq.expiry")


class Expirer:
    def __init__(self, service: QueueService) -> None:
        self._service = service
        self._changed = trio.Event()
        self._wake_ms: float = math.inf  # the deadline it sleeps for
        service.on_commit.append(self._on_commit)

    def _on_commit(self, command: Command, _result: Result) -> None:
        if not isinstance(command, _MAY_BRING_A_DEADLINE_FORWARD):
            return
        # A deadline is at least 1 s after its command (ACK_TIMEOUT at least 1 s): a commit
        # cannot bring one before a wake-up that comes sooner than that.
        if isinstance(command, RestoreState | UpdateQueue) or (
            command.ts_ms + MS_PER_S < self._wake_ms
        ):
            self._changed.set()

    async def run(self) -> None:
        """For the node's life (cancel to stop)."""
        raft = self._service.raft
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._watch_role, raft)
                while True:
                    self._changed = trio.Event()
                    if raft.is_leader:
                        await self._return_due()
                    else:
                        self._wake_ms = math.inf
                    await self._sleep()
        except NodeStopped:
            return

    async def _watch_role(self, raft: RaftNode) -> None:
        while True:
            await raft.wait_role_change()
            self._changed.set()

    async def _return_due(self) -> None:
        """Propose ExpireDue for each queue whose earliest deadline has passed; then set the
        next wake-up from what remains."""
        service = self._service
        now_ms = service.clock_ms()
        deadlines = service.state.earliest_deadlines_ms()
        for queue, deadline_ms in sorted(deadlines.items()):
            if deadline_ms > now_ms:
                continue
            try:
                await service.expire_due(queue)
            except ServiceError as exc:
                log.info("returning expired messages of %s failed: %s", queue, exc)
                self._wake_ms = now_ms + EXPIRY_RETRY_PAUSE_S * MS_PER_S
                return
        remaining = service.state.earliest_deadlines_ms().values()
        self._wake_ms = min(remaining, default=math.inf)

    async def _sleep(self) -> None:
        """Until the next deadline (and its grace) or a change, whichever comes first."""
        if self._wake_ms == math.inf:
            await self._changed.wait()
            return
        delay_ms = self._wake_ms + EXPIRY_GRACE_MS - self._service.clock_ms()
        with trio.move_on_after(max(0.0, delay_ms / MS_PER_S)):
            await self._changed.wait()
