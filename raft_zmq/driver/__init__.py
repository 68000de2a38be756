"""The driver's logic without I/O (raft_zmq/driver/driver.py), shared by the Trio shell and the
simulator; see docs/raft.md, "The driver"."""

from raft_zmq.driver.chunk_sender import ChunkSender, StreamOptions
from raft_zmq.driver.driver import Driver, DriverOptions, Outcomes, Round
from raft_zmq.driver.errors import LeadershipLost, ProposalLost

__all__ = [
    "ChunkSender",
    "Driver",
    "DriverOptions",
    "LeadershipLost",
    "Outcomes",
    "ProposalLost",
    "Round",
    "StreamOptions",
]
