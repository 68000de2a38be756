"""The follower's side of a snapshot stream, without I/O of its own: what to do with one chunk.

A leader streams a snapshot file as ``SnapshotChunk`` messages, a window of them unacknowledged
at once (raft_zmq/driver/chunk_sender.py is the leader's side). Chunks can arrive twice, after a
lost one (a gap), out of date (from a deposed leader), or from a stream this node never saw the
start of; the rules below stage exactly one copy of each byte and tell the leader where to
resume. The Trio driver (raft_zmq/node.py) and the simulator call the same function, so the rules
exist once.
"""

from __future__ import annotations

import logging

from raft_zmq.core.types import InstallSnapshot, NodeId, SnapshotChunk, SnapshotChunkReply
from raft_zmq.snapshots import SnapshotError, SnapshotStore

logger = logging.getLogger(__name__)


def accept_chunk(
    store: SnapshotStore, chunk: SnapshotChunk, term: int, me: NodeId
) -> tuple[SnapshotChunkReply, InstallSnapshot | None]:
    """Stage ``chunk`` in ``store``. Returns the reply for the leader and, when the chunk
    completed the snapshot (staged, verified and finalized), the InstallSnapshot message to hand
    to the core. ``term`` is this node's current term."""

    def reply(offset: int, ok: bool) -> SnapshotChunkReply:
        return SnapshotChunkReply(term, me, chunk.sender, chunk.meta.index, offset, ok)

    if chunk.term < term:
        return reply(0, False), None  # from a deposed leader
    incoming = store.incoming
    same = incoming is not None and incoming.meta == chunk.meta
    if same and incoming is not None and chunk.offset < incoming.received_bytes:
        return reply(incoming.received_bytes, True), None  # a duplicate: say where we are
    if chunk.offset == 0 and not same:
        incoming = store.begin_incoming(chunk.meta, chunk.total)
    elif not same or incoming is None:
        return reply(0, False), None  # the tail of a stream we never saw begin
    elif chunk.offset != incoming.received_bytes:
        # A gap: a chunk of the leader's window was lost. Say where we are; the leader's sender
        # (raft_zmq/driver/chunk_sender.py) goes back there.
        return reply(incoming.received_bytes, True), None
    try:
        received = incoming.write_chunk(chunk.offset, chunk.data)
        if chunk.done:
            incoming.finalize()
    except (SnapshotError, OSError):
        logger.exception("%s: staging a chunk of snapshot %s", me, chunk.meta)
        incoming.abort()
        return reply(0, False), None
    if not chunk.done:
        return reply(received, True), None
    return reply(received, True), InstallSnapshot(chunk.term, chunk.sender, chunk.to, chunk.meta)
