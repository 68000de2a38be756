"""The command codec: every command survives a round trip, and anything else is one clear error."""

from __future__ import annotations

import contextlib

import attrs
import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from doq.commands import (
    COMMAND_FORMAT_VERSION,
    DEQUEUE_COUNT_MAX,
    QUEUE_NAME_CHARS_MAX,
    U64_MAX,
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

from .strategies import commands, delete_queue

any_command = st.one_of(
    commands,
    delete_queue,
    st.builds(RestoreState, ts_ms=st.just(0), snapshot=st.binary(max_size=64)),
)


@given(command=any_command, ts_ms=st.integers(0, U64_MAX))
def test_every_command_survives_a_round_trip(command: object, ts_ms: int) -> None:
    command = attrs.evolve(command, ts_ms=ts_ms)
    data = encode_command(command)
    assert data[0] == COMMAND_FORMAT_VERSION
    assert decode_command(data) == command


def test_unicode_names_and_metadata_survive() -> None:
    message = NewMessage(7, 1, "ünïcødé ✓", group="t.ü.x", metadata={"ключ": "значение"})
    command = Enqueue(1, "q" * QUEUE_NAME_CHARS_MAX, (message,))
    assert decode_command(encode_command(command)) == command


@given(data=st.binary(max_size=64))
def test_random_bytes_decode_or_raise_only_command_decode_error(data: bytes) -> None:
    with contextlib.suppress(CommandDecodeError):
        decode_command(data)


def _raw(tag: int, body: object, version: int = COMMAND_FORMAT_VERSION) -> bytes:
    return bytes((version, tag)) + msgspec.msgpack.encode(body)


DEQUEUE_TAG = encode_command(Dequeue(1, "q"))[1]
ACK_TAG = encode_command(Ack(1, "q", 1))[1]
ENQUEUE_TAG = encode_command(Enqueue(1, "q", (NewMessage(1, 1, "c"),)))[1]
CREATE_TAG = encode_command(CreateQueue(1, "q", QueueType.FAIR, 1))[1]


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "needs at least"),
        (b"\x01", "needs at least"),
        (_raw(DEQUEUE_TAG, {"ts_ms": 1, "queue": "q"}, version=99), "format version"),
        (_raw(200, {"ts_ms": 1, "queue": "q"}), "unknown command tag"),
        (_raw(DEQUEUE_TAG, {"ts_ms": 1})[:-1], "malformed"),
        (_raw(DEQUEUE_TAG, {"ts_ms": 1, "queue": "q"}) + b"\x00", "malformed"),
        (_raw(DEQUEUE_TAG, {"queue": "q"}), "ts_ms"),
        (_raw(DEQUEUE_TAG, {"ts_ms": -1, "queue": "q"}), "ts_ms"),
        (_raw(DEQUEUE_TAG, {"ts_ms": 1, "queue": ""}), "queue"),
        (_raw(DEQUEUE_TAG, {"ts_ms": 1, "queue": "q" * 1025}), "queue"),
        (_raw(DEQUEUE_TAG, {"ts_ms": 1, "queue": "q", "count": 0}), "count"),
        (_raw(DEQUEUE_TAG, {"ts_ms": 1, "queue": "q", "count": DEQUEUE_COUNT_MAX + 1}), "count"),
        (_raw(DEQUEUE_TAG, {"ts_ms": 1, "queue": "q", "ack": 1}), "bool"),
        (_raw(ACK_TAG, {"ts_ms": 1, "queue": "q", "id": -5}), "id must be"),
        (_raw(ACK_TAG, {"ts_ms": 1, "queue": "q", "id": "7"}), "int"),
        (_raw(ENQUEUE_TAG, {"ts_ms": 1, "queue": "q", "messages": []}), "messages"),
        (
            _raw(ENQUEUE_TAG, {"ts_ms": 1, "queue": "q", "messages": [{"id": 1, "content": "c"}]}),
            "priority",
        ),
        (
            _raw(CREATE_TAG, {"ts_ms": 1, "name": "q", "type": "lifo", "ack_timeout_s": 1}),
            "type",
        ),
        (
            _raw(CREATE_TAG, {"ts_ms": 1, "name": "q", "type": "fair", "ack_timeout_s": 0}),
            "ack_timeout_s",
        ),
    ],
)
def test_malformed_commands_raise_a_clear_decode_error(data: bytes, why: str) -> None:
    with pytest.raises(CommandDecodeError, match=why):
        decode_command(data)


def test_constructing_an_invalid_command_fails_at_once() -> None:
    with pytest.raises(ValueError, match="count"):
        Dequeue(1, "q", count=0)
    with pytest.raises(ValueError, match="priority"):
        NewMessage(1, -1, "c")
    with pytest.raises(ValueError, match="messages"):
        Enqueue(1, "q", ())
