"""The nemesis: seeded faults on the real cluster, each injected, held, healed, and logged.

| fault | what is done |
|---|---|
| kill | kill -9 a random node; restart it at heal |
| kill-leader | kill -9 the leader; restart it at heal |
| kill-drop-caches | kill -9 node-1 (its data on the real disk), ``sync``, drop the kernel's page
  cache, restart |
| pause | SIGSTOP the leader; SIGCONT at heal |
| partition | a random minority cut from the majority, both ways |
| isolate-leader | the leader cut from every other node, both ways |
| bridge | two halves that cannot see each other, and one node that sees both |
| one-way | the leader receives nothing from the other nodes but still sends to them |
| loss | every node drops 20 % of what it receives from the other nodes |
| clock-skew | the leader's wall clock 30 s ahead, a follower's 30 s behind (libfaketime) |
| disk-full | the leader's tmpfs (a follower's when the leader's data is on the real disk) filled
  to half the write reserve: writes answer 507; the ballast removed at heal |
| disk-exhausted | the same, to the last byte: the node waits for room and catches up |

What the page-cache fault simulates: a process that dies and restarts with nothing of its data
in memory, so that every read after the restart comes from the disk. It does not simulate a
machine that loses power: what a node wrote without fsync is still in the page cache when it is
killed, and the kernel writes it back (``sync``) before the cache is dropped. Power loss would need
a block device that drops unsynced writes (dm-log-writes or similar), which this suite does not
have.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Callable

import attrs
import httpx

from simulations.realnet.netns import Network
from simulations.realnet.nodes import RESERVE_BYTES, Node, libfaketime

FAULTS = (
    "kill",
    "kill-leader",
    "kill-drop-caches",
    "pause",
    "partition",
    "isolate-leader",
    "bridge",
    "one-way",
    "loss",
    "clock-skew",
    "disk-full",
    "disk-exhausted",
)
LEADER_FAULTS = {"kill-leader", "pause", "isolate-leader", "one-way"}
SKEW_S = 30
LOSS_PROBABILITY = 0.2
BALLAST_CHUNK_BYTES = 1 << 20


@attrs.define
class Event:
    fault: str
    start_us: int
    end_us: int = 0
    detail: str = ""
    skipped: str = ""  # why the fault could not be injected here
    leader_before: str = ""


def leader(nodes: list[Node], timeout_s: float = 1.0) -> Node | None:
    """A node that says it leads (asked directly, briefly: a paused node does not answer)."""
    for node in nodes:
        if not node.alive:
            continue
        with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
            servers = httpx.get(node.url + "/API/v1/cluster/servers", timeout=timeout_s).json()[
                "servers"
            ]
            if any(s["is_leader"] and s["id"] == node.id for s in servers):
                return node
    return None


class Nemesis:
    def __init__(
        self,
        network: Network,
        nodes: list[Node],
        seed: int,
        now_us: Callable[[], int],
        log: Callable[[str], None],
    ) -> None:
        self.network = network
        self.nodes = nodes
        self.rng = random.Random(f"{seed}:nemesis")
        self.now_us = now_us
        self.log = log
        self.events: list[Event] = []
        self._undo: list[Callable[[], None]] = []

    def schedule(self, count: int, faults: tuple[str, ...] = FAULTS) -> list[str]:
        """Every fault once, shuffled, then random ones, until ``count``."""
        order = list(faults)
        self.rng.shuffle(order)
        while len(order) < count:
            order.append(self.rng.choice(faults))
        return order[:count]

    def inject(self, fault: str) -> Event:
        current = leader(self.nodes)
        event = Event(fault, self.now_us(), leader_before=current.id if current else "")
        target = current or self.rng.choice(self.nodes)
        try:
            getattr(self, "_" + fault.replace("-", "_"))(event, target)
        except SkipFault as skip:
            event.skipped = str(skip)
        self.events.append(event)
        self.log(f"inject {fault} at {event.start_us / 1e6:.1f}s: {event.detail or event.skipped}")
        return event

    def heal(self, event: Event) -> None:
        while self._undo:
            self._undo.pop()()
        event.end_us = self.now_us()
        self.log(f"heal {event.fault} at {event.end_us / 1e6:.1f}s")

    def close(self) -> None:
        """Undo whatever is still in force (also after a failure)."""
        while self._undo:
            with contextlib.suppress(Exception):
                self._undo.pop()()

    # --- the faults -----------------------------------------------------------------------------
    def _kill_node(self, event: Event, node: Node, drop_caches: bool = False) -> None:
        node.kill()
        if drop_caches:
            subprocess.run(["sync"], check=False)
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write("3\n")
        event.detail = f"kill -9 {node.id}" + (", caches dropped" if drop_caches else "")
        self._undo.append(node.start)

    def _kill(self, event: Event, _leader: Node) -> None:
        self._kill_node(event, self.rng.choice(self.nodes))

    def _kill_leader(self, event: Event, target: Node) -> None:
        self._kill_node(event, target)

    def _kill_drop_caches(self, event: Event, _leader: Node) -> None:
        on_disk = [n for n in self.nodes if not n.small_disk] or self.nodes
        self._kill_node(event, self.rng.choice(on_disk), drop_caches=True)

    def _pause(self, event: Event, target: Node) -> None:
        target.signal(signal.SIGSTOP)
        event.detail = f"SIGSTOP {target.id}"
        self._undo.append(lambda: target.signal(signal.SIGCONT))

    def _cut(self, side_a: list[Node], side_b: list[Node]) -> None:
        for a in side_a:
            self.network.drop_from(a.host, [b.host for b in side_b])
        for b in side_b:
            self.network.drop_from(b.host, [a.host for a in side_a])
        self._undo.append(self.network.heal)

    def _partition(self, event: Event, _leader: Node) -> None:
        shuffled = self.rng.sample(self.nodes, len(self.nodes))
        minority = shuffled[: (len(self.nodes) - 1) // 2]
        majority = shuffled[len(minority) :]
        self._cut(minority, majority)
        event.detail = f"{_ids(minority)} | {_ids(majority)}"

    def _isolate_leader(self, event: Event, target: Node) -> None:
        others = [n for n in self.nodes if n is not target]
        self._cut([target], others)
        event.detail = f"{target.id} | {_ids(others)}"

    def _bridge(self, event: Event, _leader: Node) -> None:
        shuffled = self.rng.sample(self.nodes, len(self.nodes))
        bridge, rest = shuffled[0], shuffled[1:]
        half = len(rest) // 2
        self._cut(rest[:half], rest[half:])
        event.detail = f"{_ids(rest[:half])} | {_ids(rest[half:])}, {bridge.id} sees both"

    def _one_way(self, event: Event, target: Node) -> None:
        others = [n for n in self.nodes if n is not target]
        self.network.drop_from(target.host, [n.host for n in others])
        self._undo.append(self.network.heal)
        event.detail = f"{target.id} hears nothing from {_ids(others)}, still sends"

    def _loss(self, event: Event, _leader: Node) -> None:
        for node in self.nodes:
            self.network.lose(node.host, LOSS_PROBABILITY)
        self._undo.append(self.network.heal)
        event.detail = f"every node drops {LOSS_PROBABILITY:.0%} of its peers' packets"

    def _clock_skew(self, event: Event, target: Node) -> None:
        if libfaketime() is None:
            raise SkipFault("libfaketime is not installed (Debian package faketime)")
        follower = self.rng.choice([n for n in self.nodes if n is not target])
        target.set_clock_offset_s(SKEW_S)
        follower.set_clock_offset_s(-SKEW_S)
        event.detail = f"{target.id} +{SKEW_S}s, {follower.id} -{SKEW_S}s"

        def undo() -> None:
            target.set_clock_offset_s(0)
            follower.set_clock_offset_s(0)

        self._undo.append(undo)

    def _disk_full(self, event: Event, target: Node) -> None:
        self._fill(event, target, RESERVE_BYTES // 2)

    def _disk_exhausted(self, event: Event, target: Node) -> None:
        self._fill(event, target, 0)

    def _fill(self, event: Event, target: Node, leave_bytes: int) -> None:
        """The leader's disk when it is a small one, else a small follower's."""
        small = [n for n in self.nodes if n.small_disk]
        if not small:
            raise SkipFault("no node has a small disk")
        node = target if target.small_disk else self.rng.choice(small)
        ballast = os.path.join(node.data_dir, "ballast")
        written = fill(ballast, leave_bytes)
        role = "the leader" if node is target else "a follower"
        event.detail = f"{node.id} ({role}): {written} bytes of ballast, {leave_bytes} left free"
        self._undo.append(lambda: os.remove(ballast))


class SkipFault(Exception):
    pass


def fill(path: str, leave_bytes: int) -> int:
    """Write until the file system has ``leave_bytes`` free (or is full); return the bytes
    written."""
    written = 0
    with open(path, "wb", buffering=0) as f:
        for size in (BALLAST_CHUNK_BYTES, 4096):
            with contextlib.suppress(OSError):
                while shutil.disk_usage(os.path.dirname(path)).free - size >= leave_bytes:
                    written += f.write(b"\0" * size)
        if leave_bytes == 0:
            with contextlib.suppress(OSError):
                while f.write(b"\0" * 512):
                    written += 512
    return written


def _ids(nodes: list[Node]) -> str:
    return ",".join(n.id for n in nodes)


def wait(seconds: float, stopping: Callable[[], bool] = lambda: False) -> None:
    """Hold a fault (the only sleep in the suite: it is the length of the fault, not a wait for
    something to happen)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not stopping():
        time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
