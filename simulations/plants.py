"""The planted bugs: switched on only here, to prove that the checkers can fail.

Three live in the consensus core (``CoreOptions.plants``, raft_zmq/core/ready.py); the fourth is
the queue state machine's ``redelivery_clock`` hook, which the simulator points at the node's own
(skewed, drifting) clock. A planted run must end in a violation; tests/simulations/test_plants.py
asserts that each is caught within ``PLANT_SEEDS_MAX`` seeds.
"""

from __future__ import annotations

import attrs

from raft_zmq.core.ready import (
    PLANT_ACK_BEFORE_SYNC,
    PLANT_COMMIT_PREVIOUS_TERM,
    PLANT_VOTE_WITHOUT_LOG_CHECK,
)

PLANT_REDELIVERY_BY_LOCAL_CLOCK = "redelivery_by_local_clock"
PLANT_SEEDS_MAX = 200  # the issue: each planted bug is caught within this many seeds


@attrs.frozen
class Plant:
    name: str
    letter: str  # the name for it: (a) to (d)
    where: str
    description: str
    core: bool  # switched on through CoreOptions.plants (else: the state machine's hook)


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
)
PLANT_NAMES = tuple(p.name for p in PLANTS)


def plant(name: str) -> Plant:
    for p in PLANTS:
        if p.name == name:
            return p
    raise ValueError(f"unknown plant {name!r}; known: {', '.join(PLANT_NAMES)}")
