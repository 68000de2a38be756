"""The two decoders that take bytes from outside, as fuzz targets, and valid inputs to start
from. Shared by the coverage-guided fuzzer (atheris_codecs.py) and the Hypothesis tests.

- A Raft frame goes through the transport's own intake (``Transport._accept``, what the ROUTER
  socket's receive loop calls for every frame): it must never raise, and must end in exactly one
  counter, ``received`` or one ``dropped_*`` (docs/transport.md).
- A command (a log entry's data) goes through ``decode_command``: a ``Command`` or a
  ``CommandDecodeError``, nothing else.
"""

from __future__ import annotations

import contextlib

import attrs

from doq.commands import (
    Ack,
    CommandDecodeError,
    CreateQueue,
    Dequeue,
    Enqueue,
    NewMessage,
    QueueType,
    RestoreState,
    decode_command,
    encode_command,
)
from raft_zmq.codec import encode
from raft_zmq.core.types import (
    AppendEntries,
    Entry,
    EntryKind,
    Heartbeat,
    RequestVote,
)
from raft_zmq.transport import Transport, TransportStats

SELF, PEER = "node-a", "node-b"


def seed_frames() -> list[bytes]:
    entry = Entry(8, 3, EntryKind.NORMAL, encode_command(Ack(1, "q", 7)))
    return [
        encode(RequestVote(3, PEER, SELF, 7, 2, False, False)),
        encode(AppendEntries(3, PEER, SELF, 7, 2, (entry,), 7)),
        encode(Heartbeat(3, PEER, SELF, 7, 7, "")),
    ]


def seed_commands() -> list[bytes]:
    return [
        encode_command(CreateQueue(1, "q", QueueType.DELAYED, 60)),
        encode_command(Enqueue(2, "q", (NewMessage(5, 1, "x", metadata={"k": "v"}),))),
        encode_command(Dequeue(3, "q", 2, True)),
        encode_command(RestoreState(4, b"\x00\x01")),
    ]


def accounted(stats: TransportStats) -> int:
    """Frames the intake has accounted for: received, or dropped for one reason."""
    fields = attrs.asdict(stats)
    return fields["received"] + sum(v for k, v in fields.items() if k.startswith("dropped_"))


def feed_frame(transport: Transport, frame: bytes, identity: bytes = PEER.encode()) -> None:
    """One frame into the intake; raises AssertionError unless exactly one counter moved."""
    before = accounted(transport.stats())
    transport._accept([identity, frame])
    after = accounted(transport.stats())
    assert after == before + 1, f"a frame of {len(frame)} B moved {after - before} counters"


def feed_command(data: bytes) -> None:
    with contextlib.suppress(CommandDecodeError):
        decode_command(data)
