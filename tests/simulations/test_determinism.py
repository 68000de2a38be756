"""A seed replays exactly: the same seed gives the same trace, byte for byte, in this process and
in others with a different hash randomization; another seed gives another trace."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from simulations.simulation import RunConfig, Simulation

SEED = 7  # a seed whose run has crashes, elections, snapshots and every client operation
TIME_S = 4.0
SUBPROCESS_TIMEOUT_S = 120


def test_the_same_seed_gives_the_same_trace_byte_for_byte():
    first = Simulation(RunConfig(seed=SEED, time_s=TIME_S, keep_trace=True)).run()
    second = Simulation(RunConfig(seed=SEED, time_s=TIME_S, keep_trace=True)).run()
    assert first.ok, (first.invariant, first.detail)
    assert first.trace is not None and second.trace is not None
    assert first.trace == second.trace
    assert first.trace_digest == second.trace_digest
    assert first.stats == second.stats and first.events == second.events
    assert first.stats["crashes"] and first.stats["elections"] > 1 and first.stats["ops_ok"]


def _digest_in_subprocess(hash_seed: str) -> str:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    command = [sys.executable, "-m", "simulations", "run", "--seed", str(SEED)]
    command += ["--time", str(TIME_S)]
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S
    )
    assert done.returncode == 0, done.stdout + done.stderr
    match = re.search(r"trace digest ([0-9a-f]{32})", done.stdout)
    assert match, done.stdout
    return match.group(1)


def test_the_trace_does_not_depend_on_hash_randomization_or_the_process():
    in_process = Simulation(RunConfig(seed=SEED, time_s=TIME_S)).run().trace_digest
    assert _digest_in_subprocess("1") == _digest_in_subprocess("4242") == in_process


def test_different_seeds_give_different_runs():
    digests = {Simulation(RunConfig(seed=s, time_s=1.0)).run().trace_digest for s in range(4)}
    assert len(digests) == 4
