"""Snapshot streams between simulated nodes, as raft_zmq.node runs them over ZeroMQ.

The leader's core asks for a snapshot to be sent (an ``InstallSnapshot`` among its messages); the
sender streams the file in chunks, one at a time, each waiting for its acknowledgement, and gives
up (telling the core, which will retry) when a chunk is not acknowledged in time. The receiver
stages the chunks in the real ``SnapshotStore`` of the follower; once the last one is in, the
follower's core gets the ``InstallSnapshot`` and decides. Chunks are small here so that streams
take several messages and the loss of any one of them is exercised.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from raft_zmq.core.types import InstallSnapshot, SnapshotChunk, SnapshotChunkReply
from raft_zmq.snapshot_stream import accept_chunk
from simulations.loop import US_PER_MS

if TYPE_CHECKING:
    from simulations.node import SimNode

SNAPSHOT_CHUNK_BYTES = 4096
SNAPSHOT_CHUNK_TIMEOUT_US = 300 * US_PER_MS  # a chunk not acknowledged in time: give up


class SnapshotSender:
    """Leader side: one snapshot to one follower."""

    def __init__(self, node: SimNode, msg: InstallSnapshot, data: bytes) -> None:
        self.node = node
        self.msg = msg
        self.data = data
        self._offset = 0
        self._chunk_end = 0
        self._attempt = 0  # bumped per chunk sent and on cancel: stale timeouts do nothing
        self._finished = False

    def start(self) -> None:
        self._send_chunk()

    def cancel(self) -> None:
        self._finished = True
        self._attempt += 1

    def _send_chunk(self) -> None:
        msg, total = self.msg, len(self.data)
        chunk_data = self.data[self._offset : self._offset + SNAPSHOT_CHUNK_BYTES]
        self._chunk_end = self._offset + len(chunk_data)
        done = self._chunk_end >= total
        chunk = SnapshotChunk(
            msg.term, msg.sender, msg.to, msg.meta, self._offset, total, chunk_data, done
        )
        self._attempt += 1
        self.node.send_now(chunk)
        self.node.loop.after(
            SNAPSHOT_CHUNK_TIMEOUT_US, self._timeout, self.node.generation, self._attempt
        )

    def on_reply(self, reply: SnapshotChunkReply) -> None:
        if self._finished or reply.snapshot_index != self.msg.meta.index:
            return
        if not reply.ok:
            self._finish(False)
        elif reply.offset >= self._chunk_end:
            if self._chunk_end >= len(self.data):
                self._finish(True)
            else:
                self._offset = self._chunk_end
                self._send_chunk()

    def _timeout(self, generation: int, attempt: int) -> None:
        if generation == self.node.generation and attempt == self._attempt and not self._finished:
            self._finish(False)

    def _finish(self, ok: bool) -> None:
        self._finished = True
        self._attempt += 1
        self.node.snapshot_send_done(self.msg.to, self, ok)


class SnapshotReceiver:
    """Follower side: the same chunk rules as raft_zmq.node (raft_zmq/snapshot_stream.py), over
    the simulated network."""

    def __init__(self, node: SimNode) -> None:
        self.node = node

    def on_chunk(self, chunk: SnapshotChunk) -> None:
        node = self.node
        assert node.snapshots is not None and node.core is not None
        reply, install = accept_chunk(node.snapshots, chunk, node.core.term, node.id)
        node.send_now(reply)
        if install is not None:
            node.deliver_to_core(install)
