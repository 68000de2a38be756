"""The wire codec: every message survives a round trip, and no input gives anything but CodecError.

The property tests generate only valid messages (terms and indexes as a Raft log makes them), so a
round trip must be exact; the garbage and mutation tests check that decode's only failure mode is
CodecError and that whatever it does accept is a valid message again.
"""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raft_zmq.codec import (
    CODEC_VERSION,
    FRAME_BYTES_MAX,
    MESSAGE_ENTRIES_MAX,
    NODE_ID_CHARS_MAX,
    SNAPSHOT_CHUNK_DATA_BYTES_MAX,
    TERM_MAX,
    CodecError,
    decode,
    encode,
)
from raft_zmq.core.types import (
    MESSAGE_TYPES,
    AppendEntries,
    AppendEntriesReply,
    ClusterConfig,
    Entry,
    EntryKind,
    Heartbeat,
    HeartbeatReply,
    InstallSnapshot,
    InstallSnapshotReply,
    RequestVote,
    RequestVoteReply,
    Server,
    SnapshotChunk,
    SnapshotChunkReply,
    SnapshotMeta,
    Suffrage,
    TimeoutNow,
)

# --- strategies for valid messages ---------------------------------------------------------------

node_ids = st.text(min_size=1, max_size=NODE_ID_CHARS_MAX)
counts = st.integers(0, TERM_MAX)
addresses = st.text(min_size=1, max_size=40)
metadata = st.sampled_from(["", '{"http":"127.0.0.1:8001"}'])


@st.composite
def configs(draw) -> ClusterConfig:
    ids = draw(st.lists(node_ids, max_size=7, unique=True))
    return ClusterConfig(
        tuple(
            Server(i, draw(addresses), draw(st.sampled_from(list(Suffrage))), draw(metadata))
            for i in ids
        )
    )


@st.composite
def metas(draw, term: int) -> SnapshotMeta:
    return SnapshotMeta(draw(counts), draw(st.integers(0, term)), draw(configs()))


@st.composite
def append_entries(draw) -> AppendEntries:
    term = draw(st.integers(0, TERM_MAX))
    prev_term = draw(st.integers(0, term))
    prev_index = draw(st.integers(0, TERM_MAX - 100))
    n = draw(st.integers(0, 12))
    terms = sorted(draw(st.lists(st.integers(prev_term, term), min_size=n, max_size=n)))
    entries = tuple(
        Entry(prev_index + 1 + i, t, draw(st.sampled_from(list(EntryKind))), draw(st.binary()))
        for i, t in enumerate(terms)
    )
    return AppendEntries(
        term, draw(node_ids), draw(node_ids), prev_index, prev_term, entries, draw(counts)
    )


@st.composite
def request_votes(draw) -> RequestVote:
    term = draw(counts)
    return RequestVote(
        term, draw(node_ids), draw(node_ids), draw(counts), draw(st.integers(0, term)),
        draw(st.booleans()), draw(st.booleans()),
    )  # fmt: skip


@st.composite
def install_snapshots(draw) -> InstallSnapshot:
    term = draw(counts)
    return InstallSnapshot(term, draw(node_ids), draw(node_ids), draw(metas(term)))


@st.composite
def snapshot_chunks(draw) -> SnapshotChunk:
    term = draw(counts)
    data = draw(st.binary(max_size=300))
    offset = draw(st.integers(0, 10_000))
    done = draw(st.booleans())
    total = offset + len(data) + (0 if done else draw(st.integers(0, 10_000)))
    meta = draw(metas(term))
    return SnapshotChunk(term, draw(node_ids), draw(node_ids), meta, offset, total, data, done)


def _simple(cls, *fields):
    return st.builds(cls, counts, node_ids, node_ids, *fields)


STRATEGIES = {
    RequestVote: request_votes(),
    RequestVoteReply: _simple(RequestVoteReply, st.booleans(), st.booleans()),
    AppendEntries: append_entries(),
    AppendEntriesReply: _simple(AppendEntriesReply, st.booleans(), counts, counts, counts),
    Heartbeat: _simple(Heartbeat, counts, counts, st.sampled_from(["", "10.0.0.1:9000"])),
    HeartbeatReply: _simple(HeartbeatReply, counts, counts),
    InstallSnapshot: install_snapshots(),
    InstallSnapshotReply: _simple(InstallSnapshotReply, counts, st.booleans()),
    TimeoutNow: _simple(TimeoutNow),
    SnapshotChunk: snapshot_chunks(),
    SnapshotChunkReply: _simple(SnapshotChunkReply, counts, counts, st.booleans()),
}
messages = st.one_of(*STRATEGIES.values())


# --- round trips ---------------------------------------------------------------------------------


@given(messages)
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_every_valid_message_round_trips_exactly(msg) -> None:
    frame = encode(msg)
    assert frame[0] == CODEC_VERSION
    decoded = decode(frame)
    assert decoded == msg
    assert type(decoded) is type(msg)


def test_the_strategies_cover_every_message_type() -> None:
    assert set(STRATEGIES) == set(MESSAGE_TYPES)


def test_decoded_entries_are_real_entries_with_plain_int_kinds() -> None:
    msg = AppendEntries(
        3, "a", "b", 7, 2, (Entry(8, 2, EntryKind.NOOP, b""), Entry(9, 3, 0, b"x")), 8
    )
    decoded = decode(encode(msg))
    assert decoded.entries == msg.entries
    assert all(type(e) is Entry for e in decoded.entries)
    assert decoded.entries[1].data == b"x"
    assert hash(decoded) == hash(msg)


def test_a_maximal_snapshot_chunk_fits_in_a_frame() -> None:
    meta = SnapshotMeta(10, 2, ClusterConfig(tuple(Server(f"n{i}", "host:1") for i in range(64))))
    data = b"\xab" * SNAPSHOT_CHUNK_DATA_BYTES_MAX
    msg = SnapshotChunk(3, "a", "b", meta, 0, len(data), data, True)
    assert decode(encode(msg)) == msg


def test_encode_refuses_a_frame_above_the_limit() -> None:
    entries = tuple(Entry(i, 1, 0, b"x" * 1024) for i in range(1, FRAME_BYTES_MAX // 1024 + 2))
    with pytest.raises(CodecError, match="frame"):
        encode(AppendEntries(1, "a", "b", 0, 0, entries, 0))


def test_encode_refuses_what_is_not_a_message() -> None:
    with pytest.raises(TypeError):
        encode(Entry(1, 1, 0, b""))  # type: ignore[arg-type]


# --- what decode refuses -------------------------------------------------------------------------

_enc = msgspec.msgpack.encode


def _frame(type_id: int, payload: object, version: int = CODEC_VERSION) -> bytes:
    return bytes((version, type_id)) + _enc(payload)


def _ae(term=5, sender="a", to="b", prev_index=10, prev_term=4, entries=(), commit=3):
    return _frame(3, [term, sender, to, prev_index, prev_term, list(entries), commit])


REFUSED = {
    "empty frame": b"",
    "header only": bytes((CODEC_VERSION, 5)),
    "one byte": bytes((CODEC_VERSION,)),
    "wrong version": _frame(5, [1, "a", "b", 0, 0, ""], version=CODEC_VERSION + 1),
    "version zero": _frame(5, [1, "a", "b", 0, 0, ""], version=0),
    "unknown type": _frame(200, [1, "a", "b", 0, 0]),
    "type zero": _frame(0, [1, "a", "b", 0, 0]),
    "trailing bytes": _frame(5, [1, "a", "b", 0, 0, ""]) + b"\x00",
    "truncated payload": _frame(5, [1, "a", "b", 0, 0, ""])[:-1],
    "missing field": _frame(5, [1, "a", "b", 0, 0]),
    "extra field": _frame(5, [1, "a", "b", 0, 0, "", 0]),
    "a map, not an array": _frame(5, {"term": 1}),
    "bool for an int": _frame(5, [True, "a", "b", 0, 0, ""]),
    "int for a bool": _frame(2, [1, "a", "b", 1, False]),
    "str for bytes": _ae(entries=[[11, 4, 0, "text"]]),
    "float term": _frame(5, [1.0, "a", "b", 0, 0, ""]),
    "negative term": _frame(5, [-1, "a", "b", 0, 0, ""]),
    "negative index": _frame(6, [1, "a", "b", 0, -3]),
    "term above 2**63-1": _frame(5, [2**63, "a", "b", 0, 0, ""]),
    "empty sender": _frame(5, [1, "", "b", 0, 0, ""]),
    "sender not a string": _frame(5, [1, b"a", "b", 0, 0, ""]),
    "recipient too long": _frame(5, [1, "a", "b" * (NODE_ID_CHARS_MAX + 1), 0, 0, ""]),
    "unknown entry kind": _ae(entries=[[11, 4, 9, b""]]),
    "entry of 3 fields": _ae(entries=[[11, 4, 0]]),
    "entries not from prev_index + 1": _ae(entries=[[12, 4, 0, b""]]),
    "entries with a gap": _ae(entries=[[11, 4, 0, b""], [13, 4, 0, b""]]),
    "entries out of order": _ae(entries=[[12, 4, 0, b""], [11, 4, 0, b""]]),
    "entry term above the message term": _ae(entries=[[11, 6, 0, b""]]),
    "entry term below prev_term": _ae(entries=[[11, 3, 0, b""]]),
    "entry terms going down": _ae(entries=[[11, 5, 0, b""], [12, 4, 0, b""]]),
    "prev_term above term": _ae(term=3, prev_term=4),
    "vote with last_term above term": _frame(1, [3, "a", "b", 9, 4, False, False]),
    "snapshot term above message term": _frame(7, [3, "a", "b", [9, 4, []]]),
    "duplicate server in snapshot config": _frame(
        7, [3, "a", "b", [9, 2, [["a", "h:1", 0], ["a", "h:2", 0]]]]
    ),
    "unknown suffrage": _frame(7, [3, "a", "b", [9, 2, [["a", "h:1", 7]]]]),
    "chunk beyond its total": _frame(10, [3, "a", "b", [9, 2, []], 5, 6, b"xx", False]),
    "last chunk short of its total": _frame(10, [3, "a", "b", [9, 2, []], 0, 6, b"xx", True]),
    "chunk data above its limit": _frame(
        10, [3, "a", "b", [9, 2, []], 0, 2**21, b"x" * (SNAPSHOT_CHUNK_DATA_BYTES_MAX + 1), False]
    ),
    "frame above the size limit": _frame(5, [1, "a", "b", 0, 0, ""]) + b"\x00" * FRAME_BYTES_MAX,
}


@pytest.mark.parametrize("frame", REFUSED.values(), ids=REFUSED.keys())
def test_decode_refuses_with_codec_error(frame: bytes) -> None:
    with pytest.raises(CodecError):
        decode(frame)


def test_the_refused_examples_are_one_change_away_from_valid() -> None:
    # Guards the table above: the same shapes, made valid, decode.
    assert decode(_frame(5, [1, "a", "b", 0, 0, ""])) == Heartbeat(1, "a", "b", 0, 0)
    assert decode(_ae(entries=[[11, 4, 0, b""], [12, 5, 0, b"x"]])).entries[1].index == 12
    assert decode(_frame(10, [3, "a", "b", [9, 2, []], 4, 6, b"xx", True])).done


def test_decode_refuses_what_is_not_bytes() -> None:
    with pytest.raises(CodecError):
        decode("\x01\x05")  # type: ignore[arg-type]


def test_decode_bounds_the_number_of_entries() -> None:
    entries = [[i, 1, 0, b""] for i in range(1, MESSAGE_ENTRIES_MAX + 2)]
    with pytest.raises(CodecError):
        decode(_ae(term=1, prev_index=0, prev_term=0, entries=entries))


# --- garbage and mutations -----------------------------------------------------------------------


def _decode_or_codec_error(frame: bytes) -> None:
    try:
        msg = decode(frame)
    except CodecError:
        return
    assert decode(encode(msg)) == msg  # what decode accepts is a valid message


@given(st.binary(max_size=300))
@settings(max_examples=1_000)
def test_random_bytes_only_ever_give_codec_error(frame: bytes) -> None:
    _decode_or_codec_error(frame)


@given(st.integers(0, 255), st.binary(max_size=300))
@settings(max_examples=1_000)
def test_random_payloads_behind_a_valid_header_only_give_codec_error(type_id, payload) -> None:
    _decode_or_codec_error(bytes((CODEC_VERSION, type_id)) + payload)


@st.composite
def mutated_frames(draw) -> bytes:
    frame = bytearray(encode(draw(messages)))
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, max(len(frame) - 1, 0)))
        action = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        if action == "flip" and frame:
            frame[position] ^= 1 << draw(st.integers(0, 7))
        elif action == "set" and frame:
            frame[position] = draw(st.integers(0, 255))
        elif action == "insert":
            frame[position:position] = draw(st.binary(min_size=1, max_size=4))
        elif action == "delete" and frame:
            del frame[position]
        elif action == "truncate":
            del frame[position:]
    return bytes(frame)


@given(mutated_frames())
@settings(max_examples=2_000, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_valid_frames_only_ever_give_codec_error(frame: bytes) -> None:
    _decode_or_codec_error(frame)
