"""The operator: membership changes and leadership transfers, through the leader, as an operator
(or doq's self-forming cluster) makes them with the real commands.

Every ``mean_gap_ms`` on average it asks the current leader for one of: add a spare node as a
learner, promote a learner to voter, remove a voter (the leader itself included) or a learner,
or transfer leadership to another voter. The change goes through the real driver
(``Driver.propose_config``, single-server changes, one at a time, raft_zmq/core/membership rules);
a change the core refuses (another one still uncommitted, no entry of the term committed yet, the
last voter) is simply not made. A removed node is retired once its removal is committed: it is
stopped and never restarted (its files would make it a stale member; rejoining is a fresh node
under a new name, as doq's repair path does). The cluster keeps at least ``VOTERS_MIN`` voters.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from raft_zmq.core.ready import ConfigChange, ConfigChangeKind
from simulations.actors.node import SimNode
from simulations.trace import Trace
from simulations.world.loop import US_PER_MS, EventLoop

VOTERS_MIN = 1  # single-voter clusters are a configuration worth running (issue 10, finding 2)
ACTIONS = ("add_learner", "promote", "remove", "transfer")


class Operator:
    def __init__(
        self,
        loop: EventLoop,
        rng: random.Random,
        trace: Trace,
        nodes: dict[str, SimNode],
        mean_gap_ms: int,
        retire: Callable[[str], None],
    ) -> None:
        self._loop = loop
        self._rng = rng
        self._trace = trace
        self._nodes = nodes
        self._mean_gap_ms = mean_gap_ms
        self._retire = retire
        self._running = False
        self.retired: set[str] = set()
        self._removing: dict[str, str] = {}  # node being removed -> the leader asked
        self.done: dict[str, int] = {}

    def start(self) -> None:
        self._running = True
        self._schedule()

    def stop(self) -> None:
        self._running = False

    def _schedule(self) -> None:
        gap_us = int(self._rng.expovariate(1.0 / self._mean_gap_ms) * US_PER_MS) + 1
        self._loop.after(gap_us, self._act)

    def _leader(self) -> SimNode | None:
        leaders = [n for n in self._nodes.values() if n.is_leader and n.core is not None]
        return max(leaders, key=lambda n: n.core.term) if leaders else None  # type: ignore[union-attr]

    def _act(self) -> None:
        if not self._running:
            return
        self._schedule()
        leader = self._leader()
        if leader is None or leader.core is None or leader.paused or leader.busy:
            return
        config = leader.core.config
        action = self._rng.choice(ACTIONS)
        voters = sorted(config.voters)
        learners = sorted(config.ids - config.voters)
        spares = sorted(
            i
            for i, n in self._nodes.items()
            if i not in config.ids and i not in self.retired and n.up
        )
        if action == "add_learner" and spares:
            self._change(leader, ConfigChangeKind.ADD_NONVOTER, self._rng.choice(spares))
        elif action == "promote" and learners:
            self._change(leader, ConfigChangeKind.ADD_VOTER, self._rng.choice(learners))
        elif action == "remove" and (learners or len(voters) > VOTERS_MIN):
            pool = learners + (voters if len(voters) > VOTERS_MIN else [])
            self._change(leader, ConfigChangeKind.REMOVE, self._rng.choice(pool))
        elif action == "transfer" and len(voters) > 1:
            target = self._rng.choice([v for v in voters if v != leader.id])
            self._transfer(leader, target)

    def _change(self, leader: SimNode, kind: ConfigChangeKind, node_id: str) -> None:
        text = f"{kind.value} {node_id} (leader {leader.id})"
        self._trace.add(self._loop.now_us, f"OPERATOR asks {text}")

        def done(outcome: str, value: Any) -> None:
            self._trace.add(self._loop.now_us, f"OPERATOR {text}: {outcome}")
            if outcome == "ok":
                self.done[kind.value] = self.done.get(kind.value, 0) + 1
                if kind is ConfigChangeKind.REMOVE:
                    self._loop.soon(self._retire_removed, node_id)

        leader.propose_config(ConfigChange(kind, node_id, f"{node_id}:9000"), done)

    def _retire_removed(self, node_id: str) -> None:
        """The removal is committed: stop the removed node for good."""
        if node_id not in self.retired:
            self.retired.add(node_id)
            self._retire(node_id)

    def _transfer(self, leader: SimNode, target: str) -> None:
        self._trace.add(self._loop.now_us, f"OPERATOR transfers leadership {leader.id} -> {target}")
        self.done["transfer"] = self.done.get("transfer", 0) + 1

        def transfer() -> None:
            core = leader.core
            if core is not None and leader.is_leader and target in core.config.voters:
                core.transfer_leadership(target)

        leader.call(transfer)
