"""The planted bugs: switched on only here, to prove that the checkers can fail.

Some live in the consensus core (``CoreOptions.plants``, raft_zmq/core/plants.py), one is the queue
state machine's ``redelivery_clock`` hook, which the simulator points at the node's own (skewed,
drifting) clock, and the others put back a bug of issue 10 (``finding``) through a hook of the real
code that only the simulator sets (``PLANT_*``, default off). A planted run must end in a violation;
tests/simulations/test_plants.py asserts that each is caught within ``PLANT_SEEDS_MAX`` seeds.
"""

from __future__ import annotations

from typing import Any

import attrs

from doq.clockbound import PLANT_COMMAND_TIME_UNBOUNDED
from doq.state.identity import PLANT_NODE_NUMBER_BY_HASH
from raft_zmq.core.plants import PLANT_READS_KEPT_ON_CONFIG_CHANGE
from raft_zmq.core.ready import (
    PLANT_ACK_BEFORE_SYNC,
    PLANT_COMMIT_PREVIOUS_TERM,
    PLANT_VOTE_WITHOUT_LOG_CHECK,
)
from raft_zmq.driver.plants import PLANT_SNAPSHOT_WRITTEN_UNCHECKED
from raft_zmq.recovery import PLANT_RESTORE_NEWEST_SNAPSHOT
from simulations.world.profile import MembershipProfile

PLANT_REDELIVERY_BY_LOCAL_CLOCK = "redelivery_by_local_clock"
PLANT_SEEDS_MAX = 200  # the issue: each planted bug is caught within this many seeds


@attrs.frozen
class Plant:
    name: str
    letter: str  # the name for it: (a) to (i)
    where: str
    description: str
    core: bool  # switched on through CoreOptions.plants (else: its own hook)
    finding: int | None = None  # the finding of issue 10 it puts back, if any
    # RunConfig fields of a profile that reaches the bug within few seeds (the CI test's; the
    # 200-seed claim on drawn profiles is `python -m simulations swarm --plant NAME`'s)
    targeted: dict[str, Any] = attrs.field(factory=dict)
    # False: drawn profiles rarely reach the bug (seeds 0-199 do not), so ``plants --check`` runs
    # the targeted profile too
    drawn: bool = True


PLANTS: tuple[Plant, ...] = (
    Plant(
        PLANT_COMMIT_PREVIOUS_TERM,
        "a",
        "raft_zmq.core",
        "commit an entry of a previous term by counting its replicas (Raft paper, Figure 8)",
        core=True,
    ),
    Plant(
        PLANT_ACK_BEFORE_SYNC,
        "b",
        "raft_zmq.core",
        "acknowledge entries before they are synced: a follower's success leaves before its "
        "write, and a leader counts its own entries at append",
        core=True,
    ),
    Plant(
        PLANT_VOTE_WITHOUT_LOG_CHECK,
        "c",
        "raft_zmq.core",
        "grant a vote without the log up-to-date check (Raft paper, section 5.4.1)",
        core=True,
    ),
    Plant(
        PLANT_REDELIVERY_BY_LOCAL_CLOCK,
        "d",
        "doq.state",
        "decide redelivery of in-flight messages by the node's own clock instead of the "
        "command's timestamp",
        core=False,
    ),
    Plant(
        PLANT_COMMAND_TIME_UNBOUNDED,
        "e",
        "doq.clockbound",
        "stamp commands with the leader's own clock, unbounded by its peers' clocks: a leader "
        "far ahead fixes the queue's clock in the future",
        core=False,
        finding=4,
        targeted={"far_clock_ms": 120_000},
    ),
    Plant(
        PLANT_SNAPSHOT_WRITTEN_UNCHECKED,
        "f",
        "raft_zmq.driver",
        "register a slow snapshot without checking that one installed from the leader has not "
        "compacted its index away meanwhile: the core's assertion ends the node",
        core=False,
        finding=1,
        targeted={"snapshot_write_us": 500_000},
    ),
    Plant(
        PLANT_RESTORE_NEWEST_SNAPSHOT,
        "g",
        "raft_zmq.recovery",
        "at start, restore and stream the newest snapshot file, not the one the log names",
        core=False,
        finding=5,
    ),
    Plant(
        PLANT_NODE_NUMBER_BY_HASH,
        "h",
        "doq.state.identity",
        "assign a node's number in message IDs by hashing its node ID (crc32), as doq did before: "
        "node-9 and node-16, node-6 and node-19, ... share one",
        core=False,
        finding=8,
    ),
    Plant(
        PLANT_READS_KEPT_ON_CONFIG_CHANGE,
        "i",
        "raft_zmq.core",
        "keep the reads waiting on a majority when the configuration changes: a leader left the "
        "only voter waits for ever for a removed voter's answer",
        core=True,
        finding=7,
        # three voters and a spare, the operator acting every 0.5 s: clusters shrink to one
        # voter again and again, now and then while a read waits for the removed one's answer
        targeted={"nodes": 3, "membership": MembershipProfile(spares=1, mean_gap_ms=500)},
        drawn=False,
    ),
)
PLANT_NAMES = tuple(p.name for p in PLANTS)


def plant(name: str) -> Plant:
    for p in PLANTS:
        if p.name == name:
            return p
    raise ValueError(f"unknown plant {name!r}; known: {', '.join(PLANT_NAMES)}")
