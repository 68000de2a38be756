"""Liveness after healing: once every fault is gone, the cluster must elect a leader, commit new
work and bring every node up to date, within a bounded virtual time.

When the faults end every link is healed, every crashed node restarted and every paused one
resumed; the clients stop starting operations. A probe then writes through the ordinary client
path (creating the first queue again: a write through the log that changes nothing), retrying on
any node until one answers. The cluster is live when the probe has succeeded, one leader is known
to every node, its log is fully committed, every node has applied all of it, and no client is
still waiting. ``LIVENESS_BOUND_S`` of virtual time is allowed for that.

Then every read (ReadIndex: a queue-info read, a new leader's barrier) must be answered within
``READ_ANSWER_S_MAX`` more: a settled cluster confirms leadership in a heartbeat round, so a read
still waiting then is hung (issue 10, finding 7: a leader left the only voter waited for a removed
voter's answer). Its client has long given up (an unknown outcome, which no other checker
reports), so this is the only place a hung read shows.
"""

from __future__ import annotations

import random

from simulations.actors.node import SimNode
from simulations.checkers.history import History
from simulations.wire import ClientRequest, ClientResponse, OpCreate, Outcome
from simulations.world.loop import US_PER_MS, US_PER_S, EventLoop
from simulations.world.network import Packet, SimNetwork

LIVENESS_BOUND_S = 20  # virtual seconds after healing
READ_ANSWER_S_MAX = 2  # virtual seconds a read may still wait once the cluster has settled
PROBE_TIMEOUT_US = 1 * US_PER_S
PROBE_RETRY_US = 50 * US_PER_MS
PROBE_CLIENT = "probe"


class Prober:
    def __init__(
        self,
        op: OpCreate,
        *,
        rng: random.Random,
        loop: EventLoop,
        network: SimNetwork,
        history: History,
        nodes: tuple[str, ...],
    ) -> None:
        self.name = PROBE_CLIENT
        self._op = op
        self._rng = rng
        self._loop = loop
        self._network = network
        self._history = history
        self._nodes = nodes
        self._pending: int | None = None
        self._node = ""
        self.done_us: int | None = None
        self.attempts = 0

    def start(self) -> None:
        self._send()

    @property
    def busy(self) -> bool:
        return self._pending is not None

    def pending_on(self, node: str) -> int | None:
        return self._pending if self._pending is not None and self._node == node else None

    def _send(self) -> None:
        self.attempts += 1
        node = self._rng.choice(self._nodes)
        self._node = node
        record = self._history.invoke(self.name, self._op, self._loop.now_us, node, self.attempts)
        self._pending = record.request_id
        self._network.send(self.name, node, ClientRequest(record.request_id, self.name, self._op))
        self._loop.after(PROBE_TIMEOUT_US, self._timeout, record.request_id)

    def on_packet(self, packet: Packet) -> None:
        response = packet.payload
        assert isinstance(response, ClientResponse), response
        if response.request_id != self._pending:
            return
        self._pending = None
        now = self._loop.now_us
        self._history.complete(response.request_id, response.outcome, response.result, now)
        if response.outcome is Outcome.OK:
            self.done_us = now
        else:
            self._loop.after(PROBE_RETRY_US, self._send)

    def _timeout(self, request_id: int) -> None:
        if request_id == self._pending:
            self._pending = None
            self._history.complete(request_id, Outcome.UNKNOWN, None, self._loop.now_us)
            self._send()


def cluster_settled(nodes: dict[str, SimNode]) -> bool:
    """One leader known to all, its log fully committed and applied everywhere. "All" are the
    members of the leader's configuration: a spare never added and a retired node are not."""
    leaders = [n for n in nodes.values() if n.is_leader]
    if len(leaders) != 1:
        return False
    core = leaders[0].core
    assert core is not None
    commit = core.log.committed
    if commit != core.log.last_index():
        return False
    for node in members(nodes).values():
        if not node.up or node.paused or node.core is None:
            return False
        if node.core.leader != leaders[0].id or node.applied_index != commit:
            return False
    return True


def hung_reads(nodes: dict[str, SimNode], now_us: int) -> str:
    """The reads still waiting, per node ("" when none)."""
    parts = []
    for node in nodes.values():
        if node.up and node.reads_waiting:
            oldest_us = min(node.reads_waiting.values())
            waited_ms = (now_us - oldest_us) // US_PER_MS
            parts.append(f"{node.id}: {len(node.reads_waiting)} waiting, oldest for {waited_ms} ms")
    return "; ".join(parts)


def members(nodes: dict[str, SimNode]) -> dict[str, SimNode]:
    """The nodes in the configuration of the newest leader (every node without one)."""
    leaders = [n for n in nodes.values() if n.is_leader and n.core is not None]
    if not leaders:
        return nodes
    config = max(leaders, key=lambda n: n.core.term).core.config  # type: ignore[union-attr]
    return {i: n for i, n in nodes.items() if i in config.ids}


def describe_nodes(nodes: dict[str, SimNode]) -> str:
    parts = []
    for node in nodes.values():
        if not node.up or node.core is None:
            parts.append(f"{node.id}: down")
            continue
        c = node.core
        parts.append(
            f"{node.id}: {c.role.value} t{c.term} leader {c.leader} commit {c.log.committed} "
            f"applied {node.applied_index} last {c.log.last_index()}"
            + (" paused" if node.paused else "")
        )
    return "; ".join(parts)
