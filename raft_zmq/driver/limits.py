"""The driver's named limits, declared once: the Trio shell (raft_zmq/node.py) and the simulated
process (simulations/actors/node.py) both read them from here (docs/raft.md, "Limits")."""

from __future__ import annotations

from typing import Final

# Snapshot files kept on disk: the newest (what a lagging follower is sent) and the one before
# it (a stream of it may still be running when a newer one is written).
SNAPSHOT_KEEP: Final = 2
# A stall (a long round, a paused process) counts the ticks it missed, so elections and
# check-quorum do not slow down; but at most this many (50 s at 50 ms ticks), so a process that
# was stopped for minutes does not spin through an unbounded number of ticks in one round.
MISSED_TICKS_MAX: Final = 1000
# Proposals turned into entries per round: a burst larger than this is split over rounds, so
# one round's write (and its AppendEntries) stays bounded.
PROPOSALS_PER_ROUND_MAX: Final = 4096
# Return routes learnt from heartbeats of leaders not in this node's configuration.
LEARNED_PEERS_MAX: Final = 16
# The snapshot stream (raft_zmq/driver/chunk_sender.py): the data in one chunk (also the most
# the wire accepts in one chunk, raft_zmq/codec.py), how many chunks may be unacknowledged at
# once, and how long the stream may go without progress before the leader gives up (the core
# then retries).
SNAPSHOT_CHUNK_BYTES: Final = 1024 * 1024
SNAPSHOT_CHUNKS_IN_FLIGHT_MAX: Final = 8
SNAPSHOT_CHUNK_TIMEOUT_MS: Final = 5000
# StorageFull (raft_zmq/statemachine.py): the round stays open and the same write or apply is
# tried again after this long, until the store has room again.
STORAGE_FULL_RETRY_INTERVAL_MS: Final = 1000
# While blocked on a full store the round does not advance, so inbound messages pile up: keep at
# most this many and drop (and count) the rest; the peers resend what matters.
INBOUND_WHILE_BLOCKED_MESSAGES_MAX: Final = 4096
