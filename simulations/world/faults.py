"""The fault schedule: partitions, crashes, pauses and clock steps, at random times of the seed.

Each fault class runs its own clock of exponential gaps (its mean from the profile; 0 switches the
class off). At most one partition is in force at a time, of one of five shapes: a symmetric split
(a minority cut from a majority), one-way cuts, the leader isolated, stalled links (held, then
flushed), or a bridge (two sides that only one node can talk to). A crash hits a random node, the
leader, a node whose write is in flight at that very moment (to catch acknowledgements that ran
ahead of the disk), or several nodes at once (a power cut of a rack); the node restarts after a
random downtime. A pause stops a node (or the leader) without it knowing. A clock step moves one
node's clock forward or back.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable

from simulations.actors.node import SNAPSHOT_RESTORE_US, SimNode
from simulations.trace import Trace
from simulations.world.loop import US_PER_MS, EventLoop
from simulations.world.network import SimNetwork
from simulations.world.profile import FaultProfile

PARTITION_MIN_MS = 100
DISCONNECT_MIN_MS = 20  # a young leader cut off comes back soon: it may win again with what it has
DISCONNECT_MS_MAX = 500
DOWN_MIN_MS = 20
PAUSE_MIN_MS = 20
DISK_FULL_MIN_MS = 100
PARTITION_SHAPES = ("split", "one_way", "isolate_leader", "stall", "bridge")
CRASH_TARGETS = ("random", "leader", "writing", "several", "all")
YOUNG_LEADER_MOMENTS = ("at_once", "first_commit", "soon")


class FaultScheduler:
    def __init__(
        self,
        loop: EventLoop,
        rng: random.Random,
        profile: FaultProfile,
        trace: Trace,
        nodes: dict[str, SimNode],
        network: SimNetwork,
        crash: Callable[[str], None],
        restart: Callable[[str], None],
    ) -> None:
        self._loop = loop
        self._rng = rng
        self._profile = profile
        self._trace = trace
        self._nodes = nodes
        self._net = network
        self._crash_node = crash
        self._restart = restart
        self._running = False
        self._partition_id = 0
        self._at_first_commit: dict[str, int] = {}  # leader -> term: strike at its first commit
        self.injected: Counter[str] = Counter()

    def start(self) -> None:
        self._running = True
        p = self._profile
        for mean_ms, fault in (
            (p.partition_mean_gap_ms, self._partition),
            (p.crash_mean_gap_ms, self._crash),
            (p.pause_mean_gap_ms, self._pause),
            (p.clock_jump_mean_gap_ms, self._clock_jump),
            (p.churn_mean_gap_ms, self._churn),
            (p.disk_full_mean_gap_ms, self._disk_full),
        ):
            if mean_ms:
                self._schedule(mean_ms, fault)

    def stop(self) -> None:
        self._running = False
        self._partition_id += 1  # a pending partition heal is moot: heal() clears everything

    def _schedule(self, mean_ms: int, fault: Callable[[], None]) -> None:
        gap_us = int(self._rng.expovariate(1.0 / mean_ms) * US_PER_MS) + 1
        self._loop.after(gap_us, self._fire, mean_ms, fault)

    def _fire(self, mean_ms: int, fault: Callable[[], None]) -> None:
        if not self._running:
            return
        fault()
        self._schedule(mean_ms, fault)

    def _note(self, kind: str, text: str) -> None:
        self.injected[kind] += 1
        self._trace.add(self._loop.now_us, f"FAULT {text}")

    # --- helpers --------------------------------------------------------------------------------
    def leader(self) -> str | None:
        """The up node leading the newest term, if any."""
        leaders = [n for n in self._nodes.values() if n.is_leader and n.core is not None]
        if not leaders:
            return None
        return max(leaders, key=lambda n: n.core.term).id  # type: ignore[union-attr]

    def _ids(self) -> list[str]:
        return list(self._nodes)

    def _up(self) -> list[str]:
        return [i for i, n in self._nodes.items() if n.up]

    # --- partitions -----------------------------------------------------------------------------
    def _partition(self) -> None:
        if self._net.partitioned:
            return
        rng, ids = self._rng, self._ids()
        shape = rng.choice(PARTITION_SHAPES)
        rng.shuffle(ids)
        if shape == "split":
            cut = rng.randint(1, len(ids) // 2)
            self._net.partition([ids[:cut], ids[cut:]])
            text = f"partition {sorted(ids[:cut])} | {sorted(ids[cut:])}"
        elif shape == "one_way":
            pairs = [(a, b) for a in ids for b in ids if a != b and rng.random() < 0.3]
            for a, b in pairs:
                self._net.cut(a, b)
            text = f"one-way cuts {sorted(pairs)}"
        elif shape == "isolate_leader":
            target = self.leader() or ids[0]
            self._net.isolate(target)
            text = f"isolate {target}"
        elif shape == "stall":
            src = ids[0]
            for dst in ids[1 : rng.randint(2, len(ids))]:
                self._net.stall(src, dst)
            text = f"stall links from {src}"
        else:
            bridge, rest = ids[0], ids[1:]
            half = len(rest) // 2
            self._net.partition([[bridge, *rest[:half]], [bridge, *rest[half:]]])
            text = f"bridge {bridge} between {sorted(rest[:half])} and {sorted(rest[half:])}"
        self._note(f"partition:{shape}", text)
        self._partition_id += 1
        duration_us = rng.randint(PARTITION_MIN_MS, self._profile.partition_max_ms) * US_PER_MS
        self._loop.after(duration_us, self._heal_partition, self._partition_id)

    def _heal_partition(self, partition_id: int) -> None:
        if partition_id == self._partition_id and self._running:
            self._net.heal_links()
            self._trace.add(self._loop.now_us, "FAULT healed")

    # --- leader churn -----------------------------------------------------------------------
    def _churn(self) -> None:
        """Disconnect the leader often, reconnect nodes at random, keep a majority connected
        (the shape of the Figure 8 test of MIT's 6.824 Raft labs). A disconnected leader keeps
        taking client requests until check-quorum deposes it: its entries stay on it alone,
        and it may win again later with them."""
        rng = self._rng
        ids = self._ids()
        disconnected = sorted(self._net.disconnected)
        leader = self.leader()
        if leader is not None and leader not in disconnected and rng.random() < 0.5:
            self._net.disconnect(leader)
            self._note("churn:disconnect", f"disconnect {leader} (leader)")
            disconnected.append(leader)
        majority = len(ids) // 2 + 1
        while disconnected and (len(ids) - len(disconnected) < majority or rng.random() < 0.3):
            node_id = disconnected.pop(rng.randrange(len(disconnected)))
            self._net.reconnect(node_id)
            self._note("churn:reconnect", f"reconnect {node_id}")

    # --- full disks ---------------------------------------------------------------------------
    def _disk_full(self) -> None:
        """One node's disk has no room for a while: its log's writes and its state machine's
        applies raise StorageFull, and its shell retries them (simulations/actors/node.py)."""
        rng, up = self._rng, self._up()
        if not up:
            return
        node_id = rng.choice(up)
        duration_us = rng.randint(DISK_FULL_MIN_MS, self._profile.disk_full_max_ms) * US_PER_MS
        self._nodes[node_id].disk_full_until_us = self._loop.now_us + duration_us
        self._note("disk_full", f"disk of {node_id} full for {duration_us // US_PER_MS} ms")

    # --- crashes --------------------------------------------------------------------------------
    def _crash(self) -> None:
        rng, up = self._rng, self._up()
        if not up:
            return
        target = rng.choice(CRASH_TARGETS)
        if target == "leader":
            victims = [self.leader() or rng.choice(up)]
        elif target == "writing":
            # The most delicate moment first: a state machine being restored from a snapshot.
            restoring = [i for i in up if self._nodes[i].restoring]
            writing = [i for i in up if self._nodes[i].disk.write_in_flight]
            victims = [rng.choice(restoring or writing or up)]
        elif target == "several":
            victims = rng.sample(up, rng.randint(min(2, len(up)), len(up)))
        elif target == "all":
            victims = up  # a power cut: every write in flight anywhere is lost at once
        else:
            victims = [rng.choice(up)]
        for node_id in sorted(victims):
            self._crash_and_restart(node_id)
        self._note(f"crash:{target}", f"crash {sorted(victims)} ({target})")

    def on_restore_started(self, node_id: str) -> None:
        """A node is restoring its state machine from a received snapshot, its log already past
        it: in seeds with crashes, sometimes crash it right there (the restart must repair it)."""
        if self._running and self._profile.crash_mean_gap_ms and self._rng.random() < 0.2:
            delay_us = self._rng.randint(0, SNAPSHOT_RESTORE_US - 1)
            self._loop.after(delay_us, self._crash_restoring, node_id)

    def on_snapshot_staged(self, node_id: str) -> None:
        """A node holds a complete received snapshot file that its log has not taken yet: in
        seeds with crashes, sometimes crash it right there, so that its next start finds a
        snapshot newer than the one its log names (issue 10, finding 5)."""
        if self._running and self._profile.crash_mean_gap_ms and self._rng.random() < 0.2:
            self._loop.after(0, self._crash_staged, node_id)

    def _crash_staged(self, node_id: str) -> None:
        if self._running and self._nodes[node_id].up:
            self._crash_and_restart(node_id)
            self._note("crash:staged", f"crash {node_id} with a received snapshot not installed")

    def _crash_restoring(self, node_id: str) -> None:
        if self._running and self._nodes[node_id].restoring:
            self._crash_and_restart(node_id)
            self._note("crash:restoring", f"crash {node_id} while it restores a snapshot")

    def _crash_and_restart(self, node_id: str) -> None:
        self._crash_node(node_id)
        down_us = self._rng.randint(DOWN_MIN_MS, self._profile.down_max_ms) * US_PER_MS
        self._loop.after(down_us, self._restart_if_down, node_id)

    # --- leaders that die young --------------------------------------------------------------
    def on_new_leader(self, node_id: str, term: int) -> None:
        """A node just won an election (its first Ready as leader is about to go out). In some
        seeds it is struck at once (cut off before its first messages leave: its no-op stays
        on it alone), right after its first commit in the term (only it knows of the commit),
        or at a random moment within a few network delays, by a crash or a disconnection.
        Those are the moments where Figure 8 of the Raft paper and lost acknowledgements live."""
        p, rng = self._profile, self._rng
        if not self._running or not p.young_leader_rate or rng.random() >= p.young_leader_rate:
            return
        when = rng.choice(YOUNG_LEADER_MOMENTS)
        if when == "at_once":
            self._disconnect_for_a_while(node_id, f"disconnect {node_id} as it wins term {term}")
        elif when == "first_commit":
            self._at_first_commit[node_id] = term
        else:
            delay_us = rng.randint(0, p.young_leader_delay_max_us)
            self._loop.after(delay_us, self._young_leader, node_id, term)

    def on_leader_commit(self, node_id: str, term: int) -> None:
        """A leader handed committed entries to its state machine."""
        if self._at_first_commit.get(node_id) == term:
            del self._at_first_commit[node_id]
            self._loop.soon(self._young_leader, node_id, term)

    def _young_leader(self, node_id: str, term: int) -> None:
        node = self._nodes[node_id]
        if not self._running or not node.is_leader or node.core is None or node.core.term != term:
            return
        if self._rng.random() < 0.7:
            self._crash_and_restart(node_id)
            self._note("young_leader:crash", f"crash {node_id}, leader of term {term}")
        else:
            self._disconnect_for_a_while(node_id, f"disconnect {node_id}, leader of term {term}")

    def _disconnect_for_a_while(self, node_id: str, text: str) -> None:
        self._net.disconnect(node_id)
        self._note("young_leader:disconnect", text)
        duration_us = self._rng.randint(DISCONNECT_MIN_MS, DISCONNECT_MS_MAX) * US_PER_MS
        self._loop.after(duration_us, self._reconnect, node_id)

    def _reconnect(self, node_id: str) -> None:
        if self._running and node_id in self._net.disconnected:
            self._net.reconnect(node_id)
            self._trace.add(self._loop.now_us, f"FAULT reconnect {node_id}")

    def _restart_if_down(self, node_id: str) -> None:
        if self._running and not self._nodes[node_id].up:
            self._restart(node_id)

    # --- pauses and clocks ----------------------------------------------------------------------
    def _pause(self) -> None:
        rng, up = self._rng, self._up()
        if not up:
            return
        leader = self.leader()
        target = leader if leader is not None and rng.random() < 0.5 else rng.choice(up)
        duration_us = rng.randint(PAUSE_MIN_MS, self._profile.pause_max_ms) * US_PER_MS
        self._nodes[target].pause(duration_us)
        self._note("pause", f"pause {target} for {duration_us // US_PER_MS} ms")

    def _clock_jump(self) -> None:
        rng = self._rng
        target = rng.choice(self._ids())
        max_ms = self._profile.clock_jump_max_ms
        delta_ms = rng.randint(-max_ms, max_ms)
        self._nodes[target].clock.step(delta_ms)
        self._note("clock", f"clock of {target} steps {delta_ms:+d} ms")
