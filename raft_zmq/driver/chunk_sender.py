"""The leader's side of a snapshot stream, without I/O: which chunks to send, and when the stream
has succeeded or failed.

The follower's rules for a chunk are ``raft_zmq.snapshot_stream.accept_chunk``: it stages bytes in
order and answers with how many it holds (``offset``), ``ok=False`` for a chunk it refuses (a
deposed leader's, or one it cannot stage). This sender keeps up to ``chunks_in_flight_max`` chunks
unacknowledged (a window, like the append pipeline's): on a link with a round trip of R, a stream
of one chunk per round trip moves one chunk per R; a window of W moves W. Acknowledgements are
cumulative. A chunk lost on the way makes the follower answer the following ones with the offset
it still holds: the first such repeated answer sends the stream back to that offset (go-back-N,
once per offset, so a burst of repeats does not resend the window again and again). A stream that
makes no progress for ``timeout_ms`` fails; the core is told and retries later.

Time is handed in (``now_ms``); nothing here reads a clock (docs/raft.md, "The driver").
"""

from __future__ import annotations

import attrs

from raft_zmq.core.types import InstallSnapshot, SnapshotChunk, SnapshotChunkReply


@attrs.frozen
class StreamOptions:
    chunk_bytes: int
    chunks_in_flight_max: int
    timeout_ms: int

    def __attrs_post_init__(self) -> None:
        assert self.chunk_bytes >= 1 and self.chunks_in_flight_max >= 1 and self.timeout_ms >= 1


class ChunkSender:
    """One snapshot (``msg.meta``, a file of ``total_bytes``) to one follower (``msg.to``)."""

    def __init__(
        self, msg: InstallSnapshot, total_bytes: int, options: StreamOptions, now_ms: int
    ) -> None:
        assert total_bytes >= 0
        self.msg = msg
        self.total_bytes = total_bytes
        self.options = options
        self.acked_bytes = 0  # the follower holds the file up to here
        self.next_offset = 0  # the next chunk to send starts here
        self.result: bool | None = None  # None while running; then whether it succeeded
        self.chunks_sent = 0
        self._sent_empty = False  # an empty file is one empty chunk
        self._rewound_at = -1
        self._deadline_ms = now_ms + options.timeout_ms

    @property
    def peer(self) -> str:
        return self.msg.to

    @property
    def finished(self) -> bool:
        return self.result is not None

    def take_sends(self) -> list[tuple[int, int]]:
        """The (offset, length) of every chunk to send now; the caller reads those bytes and sends
        ``chunk(offset, data)`` for each, in order."""
        sends: list[tuple[int, int]] = []
        window_bytes = self.options.chunks_in_flight_max * self.options.chunk_bytes
        while self.result is None and self.next_offset - self.acked_bytes < window_bytes:
            if self.next_offset >= self.total_bytes and (self.total_bytes or self._sent_empty):
                break
            length = min(self.options.chunk_bytes, self.total_bytes - self.next_offset)
            sends.append((self.next_offset, length))
            self.next_offset += length
            self._sent_empty = True
        self.chunks_sent += len(sends)
        return sends

    def chunk(self, offset: int, data: bytes) -> SnapshotChunk:
        msg = self.msg
        done = offset + len(data) >= self.total_bytes
        return SnapshotChunk(
            msg.term, msg.sender, msg.to, msg.meta, offset, self.total_bytes, data, done
        )

    def on_reply(self, reply: SnapshotChunkReply, now_ms: int) -> bool:
        """Take the follower's answer; returns whether the stream changed (more to send, or
        finished)."""
        if self.result is not None or reply.snapshot_index != self.msg.meta.index:
            return False
        if not reply.ok:
            self.result = False
            return True
        if self.total_bytes == 0:
            self.result = self._sent_empty or None  # the one empty chunk, acknowledged
            return self.result is not None
        if reply.offset > self.acked_bytes:
            self.acked_bytes = reply.offset
            self.next_offset = max(self.next_offset, reply.offset)  # it may hold more than sent
            self._deadline_ms = now_ms + self.options.timeout_ms
            if self.acked_bytes >= self.total_bytes:
                self.result = True
            return True
        lost = reply.offset == self.acked_bytes < self.next_offset
        if lost and self.acked_bytes != self._rewound_at:
            # The follower is still at ``acked_bytes``: a chunk was lost. Go back, once per offset.
            self._rewound_at = self.next_offset = self.acked_bytes
            return True
        return False

    def expire(self, now_ms: int) -> bool:
        """Fail the stream if it made no progress for ``timeout_ms``; returns whether it did."""
        if self.result is None and now_ms >= self._deadline_ms:
            self.result = False
            return True
        return False

    def cancel(self) -> None:
        if self.result is None:
            self.result = False
