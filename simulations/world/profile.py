"""What a seed runs: the cluster, the fault rates, the disk and clocks, the Raft knobs and the
workload, all drawn from the seed (swarm testing: some seeds calm, some brutal, and each fault
class switched off in some seeds, so that no one mix hides a bug another would show).

Every value is drawn from the ``profile`` generator only, so the profile of a seed is fixed by
the seed alone (and by ``--nodes`` when given).
"""

from __future__ import annotations

import random

import attrs

from simulations.world.rng import derive

NODE_COUNTS = (3, 3, 5, 5, 7)  # drawn per seed unless --nodes is given
CHURN_NODE_COUNTS = (3, 3, 5)  # leadership changes hands fastest in small clusters
INTENSITIES = ("calm", "moderate", "brutal")
FAR_CLOCK_PROBABILITY = 0.2  # seeds where one node's clock is far off (ahead or behind)
FAR_CLOCK_OFFSET_MS = 120_000  # twice doq's bound on command times (doq/clockbound.py)
FAULT_CLASS_ON_PROBABILITY = 0.75  # each fault class is switched off in a quarter of the seeds
CHURN_PROBABILITY = 0.4  # seeds of the "churn" scenario (see _faults)
TICK_MS = 10
# How long a state machine's snapshot takes to write: at once (between two rounds) in some seeds,
# in others as long as a large state's, while rounds and received snapshots go on.
SNAPSHOT_WRITE_US = (0, 0, 5_000, 50_000, 500_000)
SINGLE_VOTER_PROBABILITY = 0.1  # one voter, the other nodes learners (issue 10, finding 2)
MEMBERSHIP_PROBABILITY = 0.3  # seeds where the operator adds, promotes, removes, transfers
# Node names whose crc32 agrees modulo 1024 (the node number doq hashed from a node ID before issue
# 10's finding 8): in half of the seeds the first two nodes are such a pair.
COLLIDING_NAMES = ((6, 19), (7, 18), (8, 17), (9, 16))
COLLIDING_NAMES_PROBABILITY = 0.5


@attrs.frozen
class NetworkProfile:
    delay_min_us: int
    delay_max_us: int
    drop_rate: float
    duplicate_rate: float
    reorder_rate: float  # messages held back by up to reorder_delay_max_us, overtaken by later ones
    reorder_delay_max_us: int
    client_drop_rate: float  # requests and answers between clients and nodes (HTTP: no duplicates)
    send_loss_window_us: int  # a crash loses what the node sent this recently (its send queue)


@attrs.frozen
class FaultProfile:
    """Mean gaps between faults (0: this class is off) and their longest durations."""

    partition_mean_gap_ms: int
    partition_max_ms: int
    crash_mean_gap_ms: int
    down_max_ms: int
    pause_mean_gap_ms: int
    pause_max_ms: int
    clock_jump_mean_gap_ms: int
    clock_jump_max_ms: int
    churn_mean_gap_ms: int  # leaders disconnected, nodes reconnected (partitions are off then)
    young_leader_rate: float  # newly elected leaders crashed or cut off soon after winning
    young_leader_delay_max_us: int
    disk_full_mean_gap_ms: int = 0  # one node's stores refuse writes for a while (StorageFull)
    disk_full_max_ms: int = 0


@attrs.frozen
class DiskProfile:
    """How long one synced write of the Raft log takes; a crash before it completes loses it."""

    sync_min_us: int
    sync_max_us: int
    spike_rate: float  # writes that take spike_us instead (a disk that stalls)
    spike_us: int


@attrs.frozen
class ClockProfile:
    offset_max_ms: int  # each node's clock starts up to this far off, either way
    drift_max: float  # and runs fast or slow by up to this fraction (ticks follow it)
    far_offset_ms: int = 0  # one node's clock this much further off: beyond doq's 60 s bound


@attrs.frozen
class RaftProfile:
    tick_ms: int
    election_timeout_ticks: int
    heartbeat_interval_ticks: int
    append_bytes_max: int
    inflight_appends_max: int
    snapshot_interval_entries: int
    snapshot_trailing_entries: int
    snapshot_write_us: int = 0  # how long writing a snapshot's file takes (rounds go on)


@attrs.frozen
class WorkloadProfile:
    clients: int
    think_max_ms: int
    request_timeout_ms: int
    ack_timeout_s: int  # of every queue: short, so that leases expire during the run
    max_unacked: int  # of the fair queue (0: unlimited)
    weighted: bool  # the fair queue's strategy
    client_id_rate: float  # enqueues whose ID the client chooses (retried with the same ID)


@attrs.frozen
class MembershipProfile:
    """Who is in the cluster: at the start (``learners`` of the nodes are non-voters; nodes - 1
    of them makes a single-voter cluster), and how it changes (``spares`` more nodes wait to be
    added; the operator acts every ``mean_gap_ms`` on average, 0: never)."""

    learners: int = 0
    spares: int = 0
    mean_gap_ms: int = 0


@attrs.frozen
class Profile:
    seed: int
    nodes: int
    scenario: str  # "mixed" or "churn"
    intensity: str
    network: NetworkProfile
    faults: FaultProfile
    disk: DiskProfile
    clocks: ClockProfile
    raft: RaftProfile
    workload: WorkloadProfile
    membership: MembershipProfile = MembershipProfile()
    colliding_pair: tuple[int, int] | None = None  # the first two nodes' numbers (node-N)

    def node_names(self) -> tuple[str, ...]:
        """Every node's name, founders first, then spares: node-0, node-1, ... or, in seeds with
        a colliding pair, that pair first and the lowest other numbers after it."""
        count = self.nodes + self.membership.spares
        pair = self.colliding_pair or ()
        rest = (n for n in range(count + len(pair)) if n not in pair)
        numbers = [*pair, *rest][:count]
        return tuple(f"node-{n}" for n in numbers)

    def describe(self) -> str:
        n, f, d = self.network, self.faults, self.disk
        return (
            f"{self.nodes} nodes, {self.scenario}, {self.intensity}: "
            f"delay {n.delay_min_us}-{n.delay_max_us} us, "
            f"drop {n.drop_rate:.2f}, dup {n.duplicate_rate:.2f}, reorder {n.reorder_rate:.2f}; "
            f"gaps (ms) partition {f.partition_mean_gap_ms}, churn {f.churn_mean_gap_ms}, "
            f"crash {f.crash_mean_gap_ms}, "
            f"pause {f.pause_mean_gap_ms}, clock jump {f.clock_jump_mean_gap_ms}, "
            f"disk full {f.disk_full_mean_gap_ms}; "
            f"young leaders hit {f.young_leader_rate:.1f}; "
            f"sync {d.sync_min_us}-{d.sync_max_us} us; clocks +-{self.clocks.offset_max_ms} ms "
            f"drift {self.clocks.drift_max:.3f}{self._far()}; "
            f"append {self.raft.append_bytes_max} B x "
            f"{self.raft.inflight_appends_max}, snapshot every "
            f"{self.raft.snapshot_interval_entries}; {self.workload.clients} clients"
            + self._members()
        )

    def _members(self) -> str:
        m = self.membership
        text = f"; {m.learners} learners" if m.learners else ""
        if self.colliding_pair:
            a, b = self.colliding_pair
            text += f"; node-{a} and node-{b} (their crc32 collides)"
        if m.mean_gap_ms:
            text += f"; membership changes every {m.mean_gap_ms} ms, {m.spares} spares"
        return text

    def _far(self) -> str:
        far_ms = self.clocks.far_offset_ms
        return f", one clock {far_ms:+} ms off" if far_ms else ""


def _far_offset_ms(seed: int) -> int:
    """Drawn from its own generator, so that the rest of each seed's profile stays as it was."""
    rng = derive(seed, "profile:far-clock")
    if rng.random() >= FAR_CLOCK_PROBABILITY:
        return 0
    return rng.choice((FAR_CLOCK_OFFSET_MS, -FAR_CLOCK_OFFSET_MS))


def _disk_full(seed: int, level: int, faults: FaultProfile) -> FaultProfile:
    """Drawn from its own generator, so that the rest of each seed's profile stays as it was."""
    rng = derive(seed, "profile:disk-full")
    if rng.random() >= FAULT_CLASS_ON_PROBABILITY:
        return faults
    gap_ms = (10_000, 5_000, 2_500)[level]
    return attrs.evolve(faults, disk_full_mean_gap_ms=gap_ms, disk_full_max_ms=3_000)


def _membership(seed: int, nodes: int) -> MembershipProfile:
    """Drawn from its own generator, so that the rest of each seed's profile stays as it was."""
    rng = derive(seed, "profile:membership")
    draw = rng.random()
    if draw < SINGLE_VOTER_PROBABILITY and nodes > 1:
        return MembershipProfile(learners=nodes - 1)
    if draw < SINGLE_VOTER_PROBABILITY + MEMBERSHIP_PROBABILITY:
        return MembershipProfile(
            spares=rng.choice((1, 2)), mean_gap_ms=rng.choice((500, 1_500, 4_000))
        )
    return MembershipProfile()


def _colliding_pair(seed: int) -> tuple[int, int] | None:
    """Drawn from its own generator, so that the rest of each seed's profile stays as it was."""
    rng = derive(seed, "profile:names")
    if rng.random() >= COLLIDING_NAMES_PROBABILITY:
        return None
    return rng.choice(COLLIDING_NAMES)


def _snapshot_write_us(seed: int) -> int:
    """Drawn from its own generator, so that the rest of each seed's profile stays as it was."""
    return derive(seed, "profile:snapshot-write").choice(SNAPSHOT_WRITE_US)


def _on(rng: random.Random) -> bool:
    return rng.random() < FAULT_CLASS_ON_PROBABILITY


def _network(rng: random.Random, level: int) -> NetworkProfile:
    delay_max_us = (1_000, 4_000, 10_000)[level]
    return NetworkProfile(
        delay_min_us=rng.randint(50, 200),
        delay_max_us=rng.randint(delay_max_us // 2, delay_max_us),
        drop_rate=rng.choice(((0.0,), (0.0, 0.02), (0.05, 0.1, 0.15))[level]) if _on(rng) else 0.0,
        duplicate_rate=rng.choice((0.0, 0.01, 0.05)) if level and _on(rng) else 0.0,
        reorder_rate=rng.choice((0.0, 0.05, 0.2)) if level and _on(rng) else 0.0,
        reorder_delay_max_us=(5_000, 20_000, 50_000)[level],
        client_drop_rate=(0.0, 0.01, 0.03)[level],
        send_loss_window_us=rng.choice((0, 200, 2_000)),
    )


def _gap_ms(rng: random.Random, level: int, gaps_ms: tuple[int, int, int]) -> int:
    return gaps_ms[level] if _on(rng) else 0


def _faults(rng: random.Random, level: int, network: NetworkProfile, churn: bool) -> FaultProfile:
    """In the "churn" scenario, instead of partitions, leaders are disconnected again and again
    and nearly every new leader is struck young (simulations/world/faults.py): the fault shape that
    produces Figure 8 of the Raft paper, where entries of several terms live on minorities."""
    return FaultProfile(
        partition_mean_gap_ms=0 if churn else _gap_ms(rng, level, (8_000, 3_000, 1_200)),
        partition_max_ms=(1_500, 3_000, 5_000)[level],
        crash_mean_gap_ms=_gap_ms(rng, level, (10_000, 4_000, 2_500)),
        down_max_ms=(1_000, 1_500, 2_500)[level],
        pause_mean_gap_ms=_gap_ms(rng, level, (15_000, 6_000, 3_000)),
        pause_max_ms=(300, 1_000, 2_500)[level],
        clock_jump_mean_gap_ms=_gap_ms(rng, level, (0, 8_000, 3_000)),
        clock_jump_max_ms=(0, 1_000, 3_000)[level],
        churn_mean_gap_ms=rng.choice((50, 150)) if churn else 0,
        young_leader_rate=0.8 if churn else (rng.choice((0.3, 0.7)) if _on(rng) else 0.0),
        young_leader_delay_max_us=3 * network.delay_max_us,
    )


def _raft(rng: random.Random, level: int, churn: bool) -> RaftProfile:
    # Churn wants many elections: timeouts as short as the network allows (a few round trips).
    election_timeout_ticks = (5, 5, 8)[level] if churn else rng.choice((15, 20, 30))
    return RaftProfile(
        tick_ms=TICK_MS,
        election_timeout_ticks=election_timeout_ticks,
        heartbeat_interval_ticks=1 if churn else rng.choice((2, 3)),
        # One entry per AppendEntries in some seeds: the leader then acknowledges old-term
        # entries one by one, which is where Figure 8 of the Raft paper bites.
        append_bytes_max=rng.choice((1, 1, 1, 64 * 1024, 1024 * 1024)),
        inflight_appends_max=rng.choice((1, 4, 64, 256)),
        snapshot_interval_entries=rng.choice((20, 40, 80, 160)),
        snapshot_trailing_entries=rng.choice((0, 5, 20)),
    )


def _workload(rng: random.Random) -> WorkloadProfile:
    return WorkloadProfile(
        clients=rng.randint(2, 6),
        think_max_ms=rng.choice((10, 30, 80)),
        request_timeout_ms=rng.choice((500, 1_000, 2_000)),
        ack_timeout_s=rng.choice((1, 1, 2, 5)),
        max_unacked=rng.choice((0, 0, 1, 2)),
        weighted=rng.random() < 0.5,
        client_id_rate=rng.choice((0.0, 0.3)),
    )


def draw_profile(seed: int, nodes: int | None = None) -> Profile:
    rng = derive(seed, "profile")
    churn = rng.random() < CHURN_PROBABILITY
    drawn_nodes = rng.choice(CHURN_NODE_COUNTS if churn else NODE_COUNTS)
    level = rng.randrange(len(INTENSITIES))
    sync_max_us = (2_000, 10_000, 30_000)[level]
    network = _network(rng, level)
    return Profile(
        seed=seed,
        nodes=nodes if nodes is not None else drawn_nodes,
        scenario="churn" if churn else "mixed",
        intensity=INTENSITIES[level],
        network=network,
        faults=_disk_full(seed, level, _faults(rng, level, network, churn)),
        disk=DiskProfile(
            sync_min_us=rng.randint(100, 500),
            sync_max_us=rng.randint(sync_max_us // 2, sync_max_us),
            spike_rate=rng.choice((0.0, 0.01, 0.03)),
            spike_us=rng.choice((50_000, 200_000)),
        ),
        clocks=ClockProfile(
            offset_max_ms=rng.choice((0, 200, 1_000, 3_000)),
            drift_max=rng.choice((0.0, 0.001, 0.02, 0.05)),
            far_offset_ms=_far_offset_ms(seed),
        ),
        raft=attrs.evolve(_raft(rng, level, churn), snapshot_write_us=_snapshot_write_us(seed)),
        workload=_workload(rng),
        membership=_membership(seed, nodes if nodes is not None else drawn_nodes),
        colliding_pair=_colliding_pair(seed),
    )
