"""Coverage-guided fuzzing (atheris, libFuzzer) of the Raft frame intake and the command
decoder (tests/fuzz/targets.py). Any exception other than the decoders' own, or a frame that
is not counted exactly once, is a crash that libFuzzer reports with the input that caused it.

    python -m tests.fuzz.atheris_codecs -runs=200000 -seed=1     (from the repository root)
    python -m tests.fuzz.atheris_codecs -max_total_time=600 corpus-dir/

The first byte of an input picks the target (even: a frame, odd: a command); the rest is the
input. Valid frames and commands seed the corpus, so mutations start past the headers.
"""

from __future__ import annotations

import os
import sys
import tempfile

import atheris

with atheris.instrument_imports():
    from tests.fuzz import targets

from raft_zmq.transport import Transport

TRANSPORT = Transport(targets.SELF, "127.0.0.1:0")


def one_input(data: bytes) -> None:
    if not data:
        return
    if data[0] % 2 == 0:
        targets.feed_frame(TRANSPORT, data[1:])
    else:
        targets.feed_command(data[1:])


def seed_corpus() -> str:
    directory = tempfile.mkdtemp(prefix="doq-fuzz-corpus-")
    inputs = [b"\x00" + f for f in targets.seed_frames()]
    inputs += [b"\x01" + c for c in targets.seed_commands()]
    for i, data in enumerate(inputs):
        with open(os.path.join(directory, f"seed-{i}"), "wb") as f:
            f.write(data)
    return directory


def main() -> None:
    argv = list(sys.argv)
    if not any(not a.startswith("-") for a in argv[1:]):
        argv.append(seed_corpus())  # no corpus directory given: start from the valid seeds
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
