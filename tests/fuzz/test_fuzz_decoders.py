"""Fuzzing the two decoders that take bytes from outside (tests/fuzz/targets.py): the Raft frame
intake never raises and counts every frame exactly once (received or one dropped_* counter);
the command decoder gives a command or a CommandDecodeError. Hypothesis with binary strategies
always; atheris (coverage-guided, libFuzzer) when it is installed, for a bounded run."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raft_zmq.transport import Transport

from . import targets

ATHERIS_RUNS = 200_000  # about ten seconds here; longer runs: see atheris_codecs.py
ATHERIS_TIMEOUT_S = 300
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def transport():
    t = Transport(targets.SELF, "127.0.0.1:0")
    yield t
    trio.run(t.aclose)  # closing needs a Trio loop; the tests themselves are synchronous


def _mutated(seeds: list[bytes]):
    @st.composite
    def mutate(draw) -> bytes:
        data = bytearray(draw(st.sampled_from(seeds)))
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, len(data)))
            change = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
            if change == "flip" and i < len(data):
                data[i] ^= 1 << draw(st.integers(0, 7))
            elif change == "insert":
                data[i:i] = draw(st.binary(min_size=1, max_size=8))
            elif change == "delete":
                del data[i : i + draw(st.integers(1, 8))]
            else:
                del data[i:]
        return bytes(data)

    return mutate()


FUZZ = settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(frame=st.one_of(st.binary(max_size=512), _mutated(targets.seed_frames())))
def test_every_frame_is_received_or_dropped_and_counted_once(transport, frame):
    targets.feed_frame(transport, frame)


@FUZZ
@given(identity=st.binary(max_size=16), frame=_mutated(targets.seed_frames()))
def test_a_frame_under_a_forged_identity_is_counted_once(transport, identity, frame):
    targets.feed_frame(transport, frame, identity)


def test_the_seed_frames_are_received(transport):
    before = transport.stats().received
    for frame in targets.seed_frames():
        targets.feed_frame(transport, frame)
    assert transport.stats().received == before + len(targets.seed_frames())


def test_garbage_is_dropped_as_undecodable(transport):
    before = transport.stats().dropped_decode
    targets.feed_frame(transport, b"\xff\x00garbage")
    assert transport.stats().dropped_decode == before + 1


@FUZZ
@given(data=st.one_of(st.binary(max_size=512), _mutated(targets.seed_commands())))
def test_a_command_decodes_or_raises_its_own_error(data):
    targets.feed_command(data)


def test_atheris_finds_no_crash_in_a_bounded_run(tmp_path):
    pytest.importorskip("atheris", reason="atheris is not installed (pip install atheris)")
    argv = [sys.executable, "-m", "tests.fuzz.atheris_codecs", f"-runs={ATHERIS_RUNS}", "-seed=1"]
    argv += [f"-artifact_prefix={tmp_path}/"]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=ATHERIS_TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "Done" in done.stderr, done.stderr[-2000:]
