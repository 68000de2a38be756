"""An in-memory cluster that runs the real consensus core: messages go through a queue that tests
can drop, partition, duplicate and reorder; each node's "disk" is a MemoryLog written exactly as
the Ready contract says, so a crash loses nothing that was persisted and everything that was not.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterable

from raft_zmq.core.configcodec import encode_config
from raft_zmq.core.log import MemoryLog
from raft_zmq.core.plants import PLANT_EARLY_BEFORE_TERM_SYNC
from raft_zmq.core.raft import RaftCore
from raft_zmq.core.ready import CoreOptions, ReadState, Ready, Role
from raft_zmq.core.types import (
    ClusterConfig,
    Entry,
    EntryKind,
    HardState,
    InstallSnapshot,
    Message,
    Server,
    SnapshotMeta,
    Suffrage,
)


def bootstrap_log(config: ClusterConfig) -> MemoryLog:
    """A log holding the initial configuration at index 1, term 1 (hashicorp's bootstrap)."""
    log = MemoryLog()
    log.append([Entry(1, 1, EntryKind.CONFIG, encode_config(config))])
    log.set_hard_state(HardState(term=1, vote=None, commit=0))
    return log


class Node:
    def __init__(
        self,
        node_id: str,
        disk: MemoryLog,
        options: CoreOptions,
        seed: int,
        snapshots: dict[tuple[int, int], list[Entry]],
    ) -> None:
        self.id = node_id
        self.snapshots = snapshots  # shared "snapshot files": (index, term) -> applied entries
        self.disk = disk
        self.options = options
        self.rng = random.Random(seed)
        self.applied: list[Entry] = []  # the state machine: every entry applied, in order
        self.snapshot_applied: SnapshotMeta | None = None
        self.read_states: list[ReadState] = []
        self.failed_reads: list[int] = []
        self.readies: list[Ready] = []
        self.core = self._new_core()

    def _new_core(self) -> RaftCore:
        applied = self.applied[-1].index if self.applied else 0
        if self.snapshot_applied is not None:
            applied = max(applied, self.snapshot_applied.index)
        return RaftCore(
            self.id,
            self.disk,
            self.disk.hard_state,
            self.disk.snapshot,
            rng=self.rng,
            options=self.options,
            applied=applied,
        )

    def restart(self) -> None:
        """Crash and restart: whatever was not persisted through a Ready is gone; the state
        machine keeps what it applied (it is durable in the real system too)."""
        self.core = self._new_core()
        if (
            self.snapshot_applied is not None
            and self.snapshot_applied.index <= self.core.log.applied
        ):
            self.core.set_snapshot(self.snapshot_applied)

    def handle_ready(self, send: Callable[[Iterable[Message]], None]) -> bool:
        if not self.core.has_ready():
            return False
        rd = self.core.ready()
        self.readies.append(rd)
        self._check_early_messages(rd)
        send(rd.early_messages)
        if rd.snapshot is not None:
            self.disk.install_snapshot(rd.snapshot)
            self.snapshot_applied = rd.snapshot
            self.applied = list(self.snapshots[(rd.snapshot.index, rd.snapshot.term)])
        if rd.hard_state is not None:
            self.disk.set_hard_state(rd.hard_state)
        self.disk.append(rd.entries)
        send(rd.messages)
        for entry in rd.committed:
            last = self.applied[-1].index if self.applied else self._snapshot_index()
            assert entry.index == last + 1, f"{self.id} applies {entry.index} after {last}"
            self.applied.append(entry)
        self.read_states.extend(rd.read_states)
        self.failed_reads.extend(rd.failed_reads)
        self.core.advance(rd)
        return True

    def _check_early_messages(self, rd: Ready) -> None:
        """The Ready contract: nothing leaves before the sync of a round that changes term or
        vote (issue 10, finding 2), unless that very bug is planted."""
        durable = self.disk.hard_state
        new = rd.hard_state
        changes = new is not None and (new.term, new.vote) != (durable.term, durable.vote)
        planted = PLANT_EARLY_BEFORE_TERM_SYNC in self.options.plants
        assert not (changes and rd.early_messages) or planted, (self.id, rd)

    def _snapshot_index(self) -> int:
        return self.snapshot_applied.index if self.snapshot_applied else 0

    def take_snapshot(self) -> SnapshotMeta:
        """Snapshot the state machine at the applied index and compact the log up to it."""
        meta = self.core.snapshot_meta(self.core.log.applied)
        self.core.set_snapshot(meta)
        self.snapshots[(meta.index, meta.term)] = list(self.applied)
        self.snapshot_applied = meta
        self.disk.compact(meta)
        self.core.log_compacted()
        return meta

    @property
    def role(self) -> Role:
        return self.core.role

    def applied_commands(self) -> list[bytes]:
        return [e.data for e in self.applied if e.kind == EntryKind.NORMAL]


class Cluster:
    def __init__(
        self,
        size: int,
        *,
        seed: int = 0,
        options: CoreOptions | None = None,
        ids: list[str] | None = None,
        nonvoters: Iterable[str] = (),
    ) -> None:
        self.options = options or CoreOptions(election_timeout_ticks=10, heartbeat_interval_ticks=1)
        ids = ids or [f"n{i}" for i in range(1, size + 1)]
        learners = set(nonvoters)
        config = ClusterConfig(
            tuple(
                Server(i, f"{i}:9000", Suffrage.NONVOTER if i in learners else Suffrage.VOTER)
                for i in ids
            )
        )
        self.rng = random.Random(seed)
        self.snapshots: dict[tuple[int, int], list[Entry]] = {}
        self.nodes = {
            i: Node(i, bootstrap_log(config), self.options, seed * 1000 + k, self.snapshots)
            for k, i in enumerate(ids)
        }
        self.queue: deque[Message] = deque()
        self.cut: set[tuple[str, str]] = set()  # (sender, recipient) pairs whose messages vanish
        self.down: set[str] = set()
        self.drop_rate = 0.0
        self.duplicate_rate = 0.0
        self.reorder = False
        self.delivered: list[Message] = []
        self.filter: Callable[[Message], bool] | None = None  # return False to drop
        self.rewrite: Callable[[Message], Message] | None = None  # alter a message in flight

    def add_empty(self, node_id: str) -> Node:
        """A brand-new server with an empty log and no configuration, as a joining node starts."""
        node = Node(node_id, MemoryLog(), self.options, len(self.nodes) + 7, self.snapshots)
        self.nodes[node_id] = node
        return node

    # --- network ---------------------------------------------------------------------------
    def send(self, messages: Iterable[Message]) -> None:
        for m in messages:
            self.queue.append(m)

    def isolate(self, node_id: str) -> None:
        for other in self.nodes:
            if other != node_id:
                self.cut.add((node_id, other))
                self.cut.add((other, node_id))

    def partition(self, *groups: Iterable[str]) -> None:
        sets = [set(g) for g in groups]
        for a in self.nodes:
            for b in self.nodes:
                if a != b and not any(a in s and b in s for s in sets):
                    self.cut.add((a, b))

    def heal(self) -> None:
        self.cut.clear()

    def _deliverable(self, m: Message) -> bool:
        if m.to not in self.nodes or m.to in self.down or m.sender in self.down:
            return False
        if (m.sender, m.to) in self.cut:
            return False
        if self.filter is not None and not self.filter(m):
            return False
        return not (self.drop_rate and self.rng.random() < self.drop_rate)

    # --- running -------------------------------------------------------------------------------
    def process_readies(self) -> bool:
        progressed = False
        for node_id, node in self.nodes.items():
            if node_id not in self.down:
                while node.handle_ready(self.send):
                    progressed = True
        return progressed

    def deliver_one(self) -> bool:
        if not self.queue:
            return False
        if self.reorder and len(self.queue) > 1:
            self.queue.rotate(-self.rng.randrange(len(self.queue)))
        m = self.queue.popleft()
        if self.rewrite is not None:
            m = self.rewrite(m)
        if self._deliverable(m):
            self.delivered.append(m)
            self.nodes[m.to].core.step(m)
            if self.duplicate_rate and self.rng.random() < self.duplicate_rate:
                self.queue.append(m)
        return True

    def stabilize(self, max_steps: int = 100_000) -> None:
        """Deliver messages and handle Readies until nothing moves."""
        for _ in range(max_steps):
            progressed = self.process_readies()
            if not self.deliver_one() and not progressed:
                return
        raise AssertionError("the cluster did not settle")

    def tick(self, n: int = 1, nodes: Iterable[str] | None = None) -> None:
        for _ in range(n):
            for node_id in list(nodes or self.nodes):
                if node_id not in self.down:
                    self.nodes[node_id].core.tick()
            self.stabilize()

    def expire_leases(self) -> None:
        """An election timeout has passed since anyone heard from a leader."""
        for node in self.nodes.values():
            node.core.election_elapsed = max(
                node.core.election_elapsed, self.options.election_timeout_ticks
            )

    def elect(self, node_id: str) -> None:
        """Make ``node_id`` leader: an election timeout has passed for everyone (so no voter is
        in a leader's lease) and ``node_id`` is the first to campaign."""
        node = self.nodes[node_id]
        for _attempt in range(3):  # a term may already be spent by voters of another candidate
            self.expire_leases()
            node.core.campaign()
            self.stabilize()
            if node.role is Role.LEADER:
                break
        assert node.role is Role.LEADER, f"{node_id} did not win: {node.core.status()}"

    def run_until(self, predicate: Callable[[], bool], max_ticks: int = 1000) -> int:
        for tick in range(max_ticks):
            if predicate():
                return tick
            self.tick()
        raise AssertionError("condition not reached in time")

    # --- observations ----------------------------------------------------------------------------
    def leaders(self) -> list[Node]:
        return [n for i, n in self.nodes.items() if i not in self.down and n.role is Role.LEADER]

    def leader(self) -> Node:
        """The leader of the newest term (an isolated old leader may not know it was replaced)."""
        leaders = self.leaders()
        assert leaders, "no leader"
        newest = max(n.core.term for n in leaders)
        in_newest = [n for n in leaders if n.core.term == newest]
        assert len(in_newest) == 1, [n.id for n in in_newest]
        return in_newest[0]

    def propose(self, data: bytes, node_id: str | None = None) -> int:
        node = self.nodes[node_id] if node_id else self.leader()
        index = node.core.propose(data)
        self.stabilize()
        return index

    def crash(self, node_id: str) -> None:
        self.down.add(node_id)
        self.queue = deque(m for m in self.queue if m.to != node_id)

    def restart(self, node_id: str) -> None:
        self.down.discard(node_id)
        self.nodes[node_id].restart()
        self.stabilize()


def snapshot_messages(cluster: Cluster) -> list[InstallSnapshot]:
    return [m for m in cluster.delivered if isinstance(m, InstallSnapshot)]
