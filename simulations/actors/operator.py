"""The operator: membership changes and leadership transfers, through the leader, as an operator
(or doq's self-forming cluster) makes them with the real commands.

Every ``mean_gap_ms`` on average it asks the current leader for one of: add a spare node as a
learner, promote a learner to voter, remove a voter (the leader itself included) or a learner,
or transfer leadership to another voter. The change goes through the real driver
(``Driver.propose_config``, single-server changes, one at a time, raft_zmq/core/membership rules);
a change the core refuses (another one still uncommitted, no entry of the term committed yet, the
last voter) is simply not made. A removed node is retired once its removal is committed: it is
stopped and never restarted (its files would make it a stale member; rejoining is a fresh node
under a new name, as doq's repair path does). The cluster keeps at least ``VOTERS_MIN`` voters,
and no removal is made while a voter is down or being repaired.
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
REPAIR_RETRY_MS = 200  # the repair looks again this often (no leader yet, still catching up)


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
        self.done: dict[str, int] = {}
        self.repairing: set[str] = set()  # nodes whose log is corrupt, until they are back
        self._wipe: Callable[[str], None] | None = None

    def start(self) -> None:
        self._running = True
        self._schedule()

    def stop(self) -> None:
        self._running = False

    def _schedule(self) -> None:
        gap_us = int(self._rng.expovariate(1.0 / self._mean_gap_ms) * US_PER_MS) + 1
        self._loop.after(gap_us, self._act)

    # --- repair of a corrupt node (finding 6; docs/operations.md, "doq repair") ----------------
    def repair(self, node_id: str, wipe: Callable[[str], None]) -> None:
        """As an operator runs ``doq repair``: remove the node through the leader (retried until
        it is done), wipe its files, start it empty, add it as a learner and, once it has caught
        up, promote it. Runs until done, after healing too."""
        if node_id in self.repairing:
            return
        self.repairing.add(node_id)
        self._wipe = wipe
        self._trace.add(self._loop.now_us, f"OPERATOR repairs {node_id}: remove, wipe, rejoin")
        self._repair_step(node_id, "remove")

    def _repair_step(self, node_id: str, stage: str) -> None:
        leader = self._leader()
        retry_us = REPAIR_RETRY_MS * US_PER_MS
        if leader is None or leader.core is None or leader.paused or leader.busy:
            self._loop.after(retry_us, self._repair_step, node_id, stage)
            return
        config = leader.core.config
        if stage == "remove" and config.get(node_id) is None:
            assert self._wipe is not None
            self._wipe(node_id)  # removed: wipe it and start it empty
            stage = "add"
        if stage == "add" and config.get(node_id) is not None:
            stage = "promote"
        if stage == "promote":
            node = self._nodes[node_id]
            if node_id in config.voters:
                self.repairing.discard(node_id)
                self.done["repair"] = self.done.get("repair", 0) + 1
                self._trace.add(self._loop.now_us, f"OPERATOR repaired {node_id}")
                return
            if node.applied_index < leader.core.log.committed:  # catching up first
                self._loop.after(retry_us, self._repair_step, node_id, stage)
                return
        kind = {
            "remove": ConfigChangeKind.REMOVE,
            "add": ConfigChangeKind.ADD_NONVOTER,
            "promote": ConfigChangeKind.ADD_VOTER,
        }[stage]
        self._change(leader, kind, node_id, retire=False)
        self._loop.after(retry_us, self._repair_step, node_id, stage)

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
        spares = [i for i in spares if i not in self.repairing]
        learners = [i for i in learners if i not in self.repairing]
        if action == "add_learner" and spares:
            self._change(leader, ConfigChangeKind.ADD_NONVOTER, self._rng.choice(spares))
        elif action == "promote" and learners:
            self._change(leader, ConfigChangeKind.ADD_VOTER, self._rng.choice(learners))
        elif action == "remove" and (self.repairing or any(not self._nodes[v].up for v in voters)):
            # No removal while a voter is down or being repaired, as a careful operator does: the
            # smaller configuration's majority may need that voter, and a voter whose log turns
            # out corrupt can only be repaired through a leader (seed 123 of plant (i)'s profile:
            # a leader removed itself while the third voter lay corrupt; no leader ever again).
            return
        elif action == "remove" and (learners or len(voters) > VOTERS_MIN):
            pool = learners + (voters if len(voters) > VOTERS_MIN else [])
            self._change(leader, ConfigChangeKind.REMOVE, self._rng.choice(pool))
        elif action == "transfer" and len(voters) > 1:
            target = self._rng.choice([v for v in voters if v != leader.id])
            self._transfer(leader, target)

    def _change(
        self, leader: SimNode, kind: ConfigChangeKind, node_id: str, retire: bool = True
    ) -> None:
        text = f"{kind.value} {node_id} (leader {leader.id})"
        self._trace.add(self._loop.now_us, f"OPERATOR asks {text}")

        def done(outcome: str, value: Any) -> None:
            self._trace.add(self._loop.now_us, f"OPERATOR {text}: {outcome}")
            if outcome == "ok":
                self.done[kind.value] = self.done.get(kind.value, 0) + 1
                if kind is ConfigChangeKind.REMOVE and retire:
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
