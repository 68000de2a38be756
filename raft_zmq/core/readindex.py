"""ReadIndex bookkeeping (thesis §6.4): linearizable reads without writing to the log.

A read records the leader's commit index and waits until a majority of voters has answered a
heartbeat round sent after it: then no other leader can have committed anything newer, and the
read is served once the state machine has applied that index. Reads asked in the same round share
it. A new leader first commits its no-op (reads wait in ``_before_commit``); a leader that steps
down fails every read still waiting. The core owns the roles and the messages; this module only
counts rounds and acknowledgements.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection

import attrs

from raft_zmq.core import quorum
from raft_zmq.core.ready import ReadState
from raft_zmq.core.types import NodeId


@attrs.frozen(slots=True)
class PendingRead:
    """A read waiting for the heartbeat round ``read_seq`` to be acknowledged by a majority."""

    ctx: int
    index: int  # the leader's commit index when the read was asked
    read_seq: int


class ReadIndex:
    """``planted_kept_on_config_change`` is the simulator's planted bug (raft_zmq/core/plants.py),
    off in production: ``config_changed`` then releases nothing."""

    def __init__(self, *, planted_kept_on_config_change: bool = False) -> None:
        self._planted_kept = planted_kept_on_config_change
        self.seq = 0  # the leader's latest heartbeat round (carried by Heartbeat.read_seq)
        self.round_needed = False  # a read waits for a round not yet sent
        self._acks: dict[NodeId, int] = {}  # the newest round each voter answered
        self._pending: deque[PendingRead] = deque()  # in round order
        self._before_commit: list[int] = []  # contexts waiting for the leader's first commit
        # Outputs for the next Ready.
        self.served: list[ReadState] = []
        self.failed: list[int] = []

    def has_output(self) -> bool:
        return bool(self.served or self.failed)

    def take_output(self) -> tuple[tuple[ReadState, ...], tuple[int, ...]]:
        out = (tuple(self.served), tuple(self.failed))
        self.served, self.failed = [], []
        return out

    def wait_for_commit(self, ctx: int) -> None:
        """Step 1 of §6.4: a leader that has not committed an entry of its term waits for it."""
        self._before_commit.append(ctx)

    def take_waiting_for_commit(self) -> list[int]:
        waiting, self._before_commit = self._before_commit, []
        return waiting

    def serve_now(self, ctx: int, index: int) -> None:
        """A single voter is its own majority: nothing to confirm."""
        self.served.append(ReadState(ctx, index))

    def queue(self, ctx: int, index: int) -> None:
        self._pending.append(PendingRead(ctx, index, self.seq + 1))
        self.round_needed = True

    def take_round(self) -> bool:
        """Whether a heartbeat round must go out now; if so, it is numbered (``seq``)."""
        needed, self.round_needed = self.round_needed, False
        if needed:
            self.seq += 1
        return needed

    def ack(self, peer: NodeId, read_seq: int) -> bool:
        """A voter answered round ``read_seq``; returns whether that is news."""
        if read_seq <= self._acks.get(peer, 0):
            return False
        self._acks[peer] = read_seq
        return True

    def release(self, me: NodeId, voters: Collection[NodeId]) -> None:
        """Serve every read whose round a majority of ``voters`` has acknowledged."""
        acked = dict(self._acks)
        acked[me] = self.seq
        confirmed = quorum.majority_index(voters, acked)
        while self._pending and self._pending[0].read_seq <= confirmed:
            read = self._pending.popleft()
            self.served.append(ReadState(read.ctx, read.index))

    def config_changed(self, me: NodeId, voters: Collection[NodeId]) -> None:
        """The leader's configuration changed: the new majority may have answered already (the
        leader alone, once it is the only voter), and a removed voter's answer may never come
        (issue 10, finding 7)."""
        if not self._planted_kept:
            self.release(me, voters)

    def forget(self, peer: NodeId) -> None:
        """``peer`` left the configuration."""
        self._acks.pop(peer, None)

    def new_leader(self) -> None:
        """Acknowledgements count only for the term they were given in."""
        self._acks = {}

    def fail_all(self) -> None:
        """Leadership is lost: no waiting read can be confirmed any more."""
        self.failed.extend(read.ctx for read in self._pending)
        self.failed.extend(self._before_commit)
        self._pending.clear()
        self._before_commit = []

    def waiting(self) -> int:
        return len(self._pending) + len(self._before_commit)
