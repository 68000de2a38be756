"""The simulated network: delays, drops, duplicates, reordering, partitions and stalled links.

Endpoints are node IDs and client IDs. Between nodes every fault applies: each message is
dropped with the seed's drop rate, duplicated with its duplicate rate, delayed uniformly in
[delay_min, delay_max], and some are held back long enough for later ones to overtake them.
A directed link can be cut (a partition, symmetric or one-way) or stalled: a stalled link holds
what is sent on it and lets it all through, in order, when the stall ends (a TCP connection whose
peer stopped reading, then resumed). Between clients and nodes the traffic is HTTP: delayed, and
lost now and then (a reset connection), never duplicated. Service traffic between nodes (a
forwarded request) is HTTP too: it obeys partitions and drops but is never duplicated.

A crash loses what the node sent in the last moments before it (``crashed``): messages still in
its process's send queue never reach the wire, nor do those its stalled links were holding.

``heal`` removes every partition and stall and turns the random faults off: what the liveness
check waits on is a network that works.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from simulations.trace import Trace
from simulations.wire import describe
from simulations.world.loop import EventLoop
from simulations.world.profile import NetworkProfile


@attrs.frozen
class Packet:
    src: str
    dst: str
    payload: Any
    sent_us: int = 0


@attrs.define
class NetworkStats:
    sent: int = 0
    delivered: int = 0
    dropped: int = 0  # by the random drop rate
    cut: int = 0  # by a partition
    duplicated: int = 0
    held_back: int = 0  # reordered
    stalled: int = 0  # held by a stalled link, delivered at its end
    lost_in_crash: int = 0  # still in the sender's queue when it crashed


class SimNetwork:
    def __init__(
        self,
        loop: EventLoop,
        rng: random.Random,
        profile: NetworkProfile,
        trace: Trace,
        nodes: Iterable[str],
        deliver: Callable[[Packet], None],
    ) -> None:
        self._loop = loop
        self._rng = rng
        self._profile = profile
        self._trace = trace
        self.nodes = tuple(nodes)
        self._node_set = frozenset(self.nodes)
        self._deliver = deliver
        self._cut: set[tuple[str, str]] = set()
        self._stalled: dict[tuple[str, str], list[Packet]] = {}
        self._disconnected: set[str] = set()  # nodes cut from every other node
        self.faults_on = True
        self._crashes: dict[str, list[int]] = {}  # node -> the times it crashed
        self.stats = NetworkStats()

    # --- sending --------------------------------------------------------------------------------
    def send(self, src: str, dst: str, payload: Any, *, duplicable: bool = True) -> None:
        """Send ``payload``; ``duplicable`` is False for HTTP traffic (never duplicated)."""
        self.stats.sent += 1
        packet = Packet(src, dst, payload, self._loop.now_us)
        between_nodes = src in self._node_set and dst in self._node_set
        cut = (src, dst) in self._cut or src in self._disconnected or dst in self._disconnected
        if between_nodes and cut:
            self.stats.cut += 1
            self._trace.add(self._loop.now_us, f"cut {src}>{dst} {describe(payload)}")
            return
        if between_nodes and (src, dst) in self._stalled:
            self.stats.stalled += 1
            self._stalled[(src, dst)].append(packet)
            return
        drop_rate = self._profile.drop_rate if between_nodes else self._profile.client_drop_rate
        if self.faults_on and drop_rate and self._rng.random() < drop_rate:
            self.stats.dropped += 1
            self._trace.add(self._loop.now_us, f"drop {src}>{dst} {describe(payload)}")
            return
        self._schedule(packet, between_nodes)
        if (
            self.faults_on
            and duplicable
            and between_nodes
            and self._profile.duplicate_rate
            and self._rng.random() < self._profile.duplicate_rate
        ):
            self.stats.duplicated += 1
            self._schedule(packet, between_nodes)

    def _schedule(self, packet: Packet, between_nodes: bool) -> None:
        p = self._profile
        delay_us = self._rng.randint(p.delay_min_us, p.delay_max_us)
        held_back = self.faults_on and between_nodes and p.reorder_rate
        if held_back and self._rng.random() < p.reorder_rate:
            self.stats.held_back += 1
            delay_us += self._rng.randint(0, p.reorder_delay_max_us)
        self._loop.after(delay_us, self._arrive, packet)

    def _arrive(self, packet: Packet) -> None:
        if self._lost_in_crash(packet):
            self.stats.lost_in_crash += 1
            self._trace.add(self._loop.now_us, f"lost {packet.src}>{packet.dst} (sender crashed)")
            return
        self.stats.delivered += 1
        self._deliver(packet)

    def crashed(self, node: str) -> None:
        """``node`` died: what it sent in the last ``send_loss_window_us`` was still in its send
        queue (ZeroMQ hands messages to an I/O thread of the process) and never left."""
        if self._profile.send_loss_window_us and self.faults_on:
            self._crashes.setdefault(node, []).append(self._loop.now_us)
        for (src, _dst), held in self._stalled.items():
            if src == node:
                self.stats.lost_in_crash += len(held)
                held.clear()  # a stalled link's queue lives in the sender's process

    def _lost_in_crash(self, packet: Packet) -> bool:
        window_us = self._profile.send_loss_window_us
        for crash_us in self._crashes.get(packet.src, ()):
            if packet.sent_us <= crash_us < packet.sent_us + window_us:
                return True
        return False

    # --- partitions -----------------------------------------------------------------------------
    def cut(self, src: str, dst: str) -> None:
        assert src != dst and src in self._node_set and dst in self._node_set, (src, dst)
        self._cut.add((src, dst))

    def partition(self, groups: Iterable[Iterable[str]]) -> None:
        """Cut every link between nodes of different groups, both ways."""
        side = {node: i for i, group in enumerate(groups) for node in group}
        for a in self.nodes:
            for b in self.nodes:
                if a != b and side.get(a, -1) != side.get(b, -2):
                    self._cut.add((a, b))

    def isolate(self, node: str) -> None:
        self.partition([[node], [n for n in self.nodes if n != node]])

    def disconnect(self, node: str) -> None:
        """Cut ``node`` from every other node, on top of any partition."""
        assert node in self._node_set, node
        self._disconnected.add(node)

    def reconnect(self, node: str) -> None:
        self._disconnected.discard(node)

    @property
    def disconnected(self) -> frozenset[str]:
        return frozenset(self._disconnected)

    def stall(self, src: str, dst: str) -> None:
        assert src != dst, src
        self._stalled.setdefault((src, dst), [])

    def heal_links(self) -> None:
        """Remove every cut and stall (not disconnections); a stalled link lets through what it
        held, in order."""
        self._cut.clear()
        stalled, self._stalled = self._stalled, {}
        for (src, dst), packets in stalled.items():
            self._trace.add(self._loop.now_us, f"unstall {src}>{dst} {len(packets)} messages")
            for packet in packets:
                self._schedule(packet, True)

    def heal(self) -> None:
        """Heal every link, reconnect every node and turn the random faults off for good."""
        self.heal_links()
        self._disconnected.clear()
        self.faults_on = False

    @property
    def partitioned(self) -> bool:
        return bool(self._cut or self._stalled)
