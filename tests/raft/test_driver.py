"""The sans-I/O driver (raft_zmq/driver/) on the real core over MemoryLogs: a tiny shell in the
test persists each Round, applies it (a result per entry: its index) and finishes it."""

from __future__ import annotations

import random
from typing import Any

from raft_zmq.core.raft import RaftCore
from raft_zmq.core.ready import ConfigChange, ConfigChangeKind, CoreOptions, Role
from raft_zmq.core.types import ClusterConfig, Heartbeat, Server, SnapshotMeta
from raft_zmq.driver import Driver, DriverOptions, Outcomes
from raft_zmq.driver.limits import (
    INBOUND_WHILE_BLOCKED_MESSAGES_MAX,
    MISSED_TICKS_MAX,
    PROPOSALS_PER_ROUND_MAX,
)
from tests.raft.harness import bootstrap_log

OPTIONS = CoreOptions(election_timeout_ticks=10, heartbeat_interval_ticks=1)


class Shell:
    """One node: a MemoryLog disk and a state machine that answers each entry with its index."""

    def __init__(self, node_id: str, config: ClusterConfig, **options: Any) -> None:
        self.disk = bootstrap_log(config)
        core = RaftCore(
            node_id,
            self.disk,
            self.disk.hard_state,
            self.disk.snapshot,
            rng=random.Random(node_id),
            options=OPTIONS,
        )
        self.driver: Driver[str] = Driver(core, DriverOptions(**options))
        self.outbox: list[Any] = []
        self.entries_per_round: list[int] = []
        self.outcomes: list[Outcomes[str]] = []

    def run(self, now_ms: int = 0) -> None:
        """Rounds until nothing is left; messages go to ``outbox``."""
        driver = self.driver
        while True:
            self.outcomes.append(driver.feed(now_ms))
            rnd = driver.next_ready()
            if rnd is None:
                if driver.has_input():
                    continue
                return
            rd = rnd.ready
            self.outbox.extend(rnd.early)
            if rd.entries:
                self.disk.append(rd.entries)
                self.entries_per_round.append(len(rd.entries))
            if rd.hard_state is not None:
                self.disk.set_hard_state(rd.hard_state)
            self.outbox.extend(rnd.late)
            results = [entry.index for entry in rd.committed]
            self.outcomes.append(driver.finish(rnd, results))

    def resolved(self) -> dict[str, Any]:
        return {token: value for out in self.outcomes for token, value in out.resolved}

    def reads(self) -> dict[str, int]:
        return {token: index for out in self.outcomes for token, index in out.reads_ready}

    def failed(self) -> dict[str, Exception]:
        return {token: error for out in self.outcomes for token, error in out.failed}


def one_voter() -> Shell:
    shell = Shell("a", ClusterConfig((Server("a", "h:1"),)))
    shell.driver.core.campaign()
    shell.run()
    assert shell.driver.core.role is Role.LEADER
    return shell


def deliver(shells: dict[str, Shell], rounds: int = 20) -> None:
    """Pass messages between the shells until they are quiet."""
    for _ in range(rounds):
        moved = False
        for shell in shells.values():
            outbox, shell.outbox = shell.outbox, []
            for msg in outbox:
                shells[msg.to].driver.receive([msg])
                moved = True
        for shell in shells.values():
            shell.run()
        if not moved:
            return


def test_proposals_resolve_with_their_results_and_a_burst_is_split_over_rounds():
    shell = one_voter()
    for i in range(PROPOSALS_PER_ROUND_MAX + 10):
        shell.driver.propose(b"x", f"p{i}")
    shell.run()
    assert max(shell.entries_per_round) == PROPOSALS_PER_ROUND_MAX
    resolved = shell.resolved()
    assert len(resolved) == PROPOSALS_PER_ROUND_MAX + 10
    assert resolved["p0"] < resolved["p1"] < resolved[f"p{PROPOSALS_PER_ROUND_MAX + 9}"]


def test_missed_ticks_are_capped():
    shell = one_voter()
    shell.driver.tick(MISSED_TICKS_MAX * 5)
    assert shell.driver._ticks == MISSED_TICKS_MAX


def test_the_driver_asks_for_a_snapshot_every_interval_and_once_at_a_time():
    shell = Shell("a", ClusterConfig((Server("a", "h:1"),)), snapshot_interval_entries=10)
    shell.driver.core.campaign()
    shell.run()
    for i in range(25):
        shell.driver.propose(b"x", f"p{i}")
        shell.run()
    asked = sum(out.take_snapshot for out in shell.outcomes)
    assert asked == 1  # the first is still being written: no second one
    index = shell.driver.applied_index
    meta = shell.driver.snapshot_written(index)
    assert meta is not None and meta.index == index
    assert shell.driver.snapshot_registered(meta) is None  # trailing entries: nothing to compact
    shell.driver.snapshot_finished(True)
    assert shell.driver.core.latest_snapshot == meta


def test_a_snapshot_superseded_by_an_installed_one_is_discarded():
    # Finding 1's rule, without I/O: a snapshot at an index the log no longer holds (an install
    # moved its start past it) has no metadata to take; the driver says "discard".
    shell = one_voter()
    for i in range(5):
        shell.driver.propose(b"x", f"p{i}")
    shell.run()
    core = shell.driver.core
    newer = SnapshotMeta(core.log.applied, core.term, core.config)
    core.set_snapshot(newer)  # as advance() records an installed snapshot
    assert shell.driver.snapshot_written(core.log.applied - 2) is None


def test_reads_pending_when_the_configuration_shrinks_to_this_leader_alone_are_served():
    servers = (Server("a", "h:1"), Server("b", "h:2"))
    shells = {s.id: Shell(s.id, ClusterConfig(servers)) for s in servers}
    shells["a"].driver.core.campaign()
    shells["a"].run()
    deliver(shells)
    leader = shells["a"]
    assert leader.driver.core.role is Role.LEADER and leader.driver.core.committed_in_term()
    shells["b"].outbox.clear()
    leader.driver.read("r1")  # waits for b's heartbeat answer ...
    leader.run()
    leader.outbox.clear()  # ... which never comes: b is gone
    # The configuration takes effect when appended: a alone is the majority from then on.
    leader.driver.propose_config(ConfigChange(ConfigChangeKind.REMOVE, "b"), "remove-b")
    leader.run()
    assert leader.driver.core.config.voters == {"a"}
    assert "r1" in leader.reads(), "the read must be served once a is the only voter"
    assert leader.reads()["r1"] >= 1


def test_inbound_messages_are_bounded_while_blocked_on_storage_and_counted():
    shell = one_voter()
    driver = shell.driver
    beat = Heartbeat(1, "b", "a", 0, 0, "")
    driver.storage_blocked = True
    driver.receive([beat] * (INBOUND_WHILE_BLOCKED_MESSAGES_MAX + 7))
    assert len(driver._inbound) == INBOUND_WHILE_BLOCKED_MESSAGES_MAX
    assert driver.stats["inbound_dropped_while_blocked"] == 7
    assert not any(out.take_snapshot for out in shell.outcomes)
    driver.storage_blocked = False
    driver.receive([beat] * 3)
    assert len(driver._inbound) == INBOUND_WHILE_BLOCKED_MESSAGES_MAX + 3
