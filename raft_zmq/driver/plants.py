"""Planted bugs of the driver: named switches that put a fixed bug back, for the simulator only.

Like raft_zmq/core/plants.py: only the simulator (simulations/plants.py) turns one on, through
``DriverOptions.plants``, to prove that its checkers see the bug; production never sets them.
"""

from __future__ import annotations

# Issue 10 finding 1: ask the core for the metadata of the index a slow snapshot read, without
# checking that a snapshot installed from the leader meanwhile has not compacted it away (the
# core's assertion then ends the node, as it ended the process).
PLANT_SNAPSHOT_WRITTEN_UNCHECKED = "snapshot_written_unchecked"
DRIVER_PLANTS = frozenset({PLANT_SNAPSHOT_WRITTEN_UNCHECKED})
