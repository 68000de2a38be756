"""``python -m doq.bench.snapshot_stall``: how late a node's Trio loop runs while a snapshot of
the queue state is written, idle and during each way of writing it, in one run.

The state is built through the real state machine's apply path (``doq bench state``'s prefill):
``--messages`` messages (250,000 by default) over ``--queues`` queues, alternately fair (10
groups) and delayed, with ``--inflight`` of them dequeued and not acked. Three probes then run in
the loop, as the node's loop does its work: a periodic ``trio.sleep`` of 2 ms (its lateness), a
"round" of ``--round-trips`` (16) 64-byte round trips in a row over a socket pair to an echo task
in the same loop (a Raft round's sends and receives: each syscall gives the GIL up), and a 4 KiB
write plus fsync of a scratch file in the loop thread (the Raft log's fsync). Each phase measures
them while something else goes on:

* ``idle``: nothing, for ``--idle-s`` seconds;
* ``before``: ``QueueStateMachine.snapshot`` in ``trio.to_thread.run_sync`` with one fsync at
  the end of the file, as the node wrote snapshots before (the GIL convoy, docs/raft.md "Stalls");
* ``before-switch``: the same with ``sys.setswitchinterval(--switch-ms)`` (process-wide: for
  comparison only);
* ``thread``: in the thread, the file synced every ``SYNC_EVERY_BYTES`` (doq/state/snapshot.py);
* ``process``: what the node does now, ``raft_zmq.snapshot_writer.write_snapshot``: the state
  machine's ``snapshot_command`` (doq/state/snapshot_process.py) run with ``trio.run_process``.

The snapshot phases run ``--repeat`` times each (3), interleaved, their samples merged; each gives
the snapshot's mean duration. ``--profile`` prints where the in-thread writer's time goes
(cProfile, alone, no probes). With ``--json`` the last line is one JSON object. The snapshot
process uses a second core: on a machine with one, it competes with the loop.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable

import trio

from doq.bench.state import START_MS, Bench
from doq.bench.stream import percentile_ms
from doq.commands import Dequeue, QueueType
from doq.state import snapshot
from raft_zmq.snapshot_writer import write_snapshot

SLEEP_PROBE_S = 0.002
ROUND_TRIP_BYTES = 64
FSYNC_BYTES = 4096
PROBE_PAUSE_S = 0.005  # between round trips and between fsyncs: a busy loop, not a saturated one
GROUPS = 10
ONE_SYNC_BYTES = 1 << 62
DEQUEUE_COUNT = 100


class Samples:
    """Seconds per probe event, kept in a list per probe."""

    def __init__(self) -> None:
        self.by_probe: dict[str, list[float]] = {"sleep_late": [], "round": [], "fsync": []}

    def summary(self) -> dict[str, dict[str, float]]:
        return {
            probe: {
                "n": len(values),
                "p50_ms": percentile_ms(values, 0.50),
                "p99_ms": percentile_ms(values, 0.99),
                "max_ms": max(values, default=0.0) * 1e3,
            }
            for probe, values in self.by_probe.items()
        }


def build_state(path: str, messages: int, queues: int, inflight: int) -> Bench:
    bench = Bench(path, QueueType.FAIR, GROUPS, random_priorities=False, sync=False)
    for number in range(queues):
        bench.queue_type = QueueType.FAIR if number % 2 == 0 else QueueType.DELAYED
        bench.create(f"q{number}")
        bench.prefill(f"q{number}", messages // queues)
    per_queue = inflight // queues
    for number in range(queues):
        for _ in range(0, per_queue, DEQUEUE_COUNT):
            dequeue = Dequeue(START_MS, f"q{number}", count=DEQUEUE_COUNT)
            bench.sm.apply(bench.entries([dequeue]))
    return bench


async def probes(
    samples: Samples, scratch: str, stop: trio.Event, round_trips_per_round: int
) -> None:
    left, right = trio.socket.socketpair()
    fd = os.open(os.path.join(scratch, "fsync-probe"), os.O_WRONLY | os.O_CREAT, 0o600)

    async def sleeper() -> None:
        while not stop.is_set():
            started = trio.current_time()
            await trio.sleep(SLEEP_PROBE_S)
            samples.by_probe["sleep_late"].append(trio.current_time() - started - SLEEP_PROBE_S)

    async def echo() -> None:
        while True:
            data = await right.recv(ROUND_TRIP_BYTES)
            await right.send(data)

    async def round_trips() -> None:
        payload = b"x" * ROUND_TRIP_BYTES
        while not stop.is_set():
            started = time.perf_counter()
            for _ in range(round_trips_per_round):
                await left.send(payload)
                await left.recv(ROUND_TRIP_BYTES)
            samples.by_probe["round"].append(time.perf_counter() - started)
            await trio.sleep(PROBE_PAUSE_S)

    async def fsyncs() -> None:
        block = b"f" * FSYNC_BYTES
        while not stop.is_set():
            started = time.perf_counter()
            os.pwrite(fd, block, 0)
            os.fsync(fd)  # in the loop thread, as the node's log write
            samples.by_probe["fsync"].append(time.perf_counter() - started)
            await trio.sleep(PROBE_PAUSE_S)

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(echo)
            for probe in (sleeper, round_trips, fsyncs):
                nursery.start_soon(probe)
            await stop.wait()
            nursery.cancel_scope.cancel()
    finally:
        left.close()
        right.close()
        os.close(fd)


async def phase(
    scratch: str, work: Callable[[], Awaitable[object]], round_trips_per_round: int
) -> tuple[Samples, float]:
    """The probes' samples while ``work`` runs, and how long it took."""
    samples, stop = Samples(), trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(probes, samples, scratch, stop, round_trips_per_round)
        await trio.sleep(0.2)  # the probes settle before the clock starts
        for values in samples.by_probe.values():
            values.clear()
        started = time.perf_counter()
        await work()
        elapsed = time.perf_counter() - started
        stop.set()
    return samples, elapsed


async def measure(bench: Bench, scratch: str, args: argparse.Namespace) -> dict[str, dict]:
    sm, out = bench.sm, os.path.join(scratch, "snap")
    results: dict[str, dict] = {}

    async def in_thread() -> None:
        await trio.to_thread.run_sync(sm.snapshot, out)

    async def before() -> None:
        saved = snapshot.SYNC_EVERY_BYTES
        snapshot.SYNC_EVERY_BYTES = ONE_SYNC_BYTES  # the writer as it was: one fsync at the end
        try:
            await in_thread()
        finally:
            snapshot.SYNC_EVERY_BYTES = saved

    async def before_switch() -> None:
        saved = sys.getswitchinterval()
        sys.setswitchinterval(args.switch_ms / 1000)
        try:
            await before()
        finally:
            sys.setswitchinterval(saved)

    async def in_process() -> None:
        await write_snapshot(sm, out)

    phases = {
        "idle": lambda: trio.sleep(args.idle_s),
        "before": before,
        "before-switch": before_switch,
        "thread": in_thread,
        "process": in_process,
    }
    names = args.phases.split(",")
    merged = {name: Samples() for name in names}
    durations: dict[str, list[float]] = {name: [] for name in names}
    for turn in range(args.repeat):  # interleaved: a warmer cache or a busier minute favours none
        for name in names:
            if name == "idle" and turn:
                continue
            samples, elapsed = await phase(scratch, phases[name], args.round_trips)
            durations[name].append(elapsed)
            for probe, values in samples.by_probe.items():
                merged[name].by_probe[probe].extend(values)
    for name in names:
        mean_s = sum(durations[name]) / len(durations[name])
        results[name] = {"duration_s": mean_s, **merged[name].summary()}
    return results


def profile(bench: Bench, scratch: str) -> None:
    out = os.path.join(scratch, "snap-profiled")
    started, cpu = time.perf_counter(), time.process_time()
    profiler = cProfile.Profile()
    profiler.runcall(bench.sm.snapshot, out)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(f"in-thread writer alone, profiled: {wall:.2f} s wall, {cpu:.2f} s CPU")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(8)


def report(results: dict[str, dict]) -> None:
    idle = results.get("idle")
    for name, figures in results.items():
        print(f"{name}: {figures['duration_s']:.2f} s (mean)")
        for probe in ("sleep_late", "round", "fsync"):
            f = figures[probe]
            ratio = ""
            if idle and name != "idle":
                base = idle[probe]
                ratio = (
                    f"  (x{f['p99_ms'] / max(base['p99_ms'], 1e-3):.0f} p99, "
                    f"x{f['max_ms'] / max(base['max_ms'], 1e-3):.0f} max vs idle)"
                )
            print(
                f"  {probe:<11} n={f['n']:>5}  p50 {f['p50_ms']:7.2f} ms  p99 {f['p99_ms']:7.2f} ms"
                f"  max {f['max_ms']:7.2f} ms{ratio}"
            )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m doq.bench.snapshot_stall", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--messages", type=int, default=250_000)
    parser.add_argument("--queues", type=int, default=8)
    parser.add_argument("--inflight", type=int, default=8_000, help="dequeued and not acked")
    parser.add_argument(
        "--round-trips", type=int, default=16, help="socket round trips per probed round"
    )
    parser.add_argument("--idle-s", type=float, default=3.0)
    parser.add_argument("--switch-ms", type=float, default=0.5, help="thread-switch phase")
    parser.add_argument("--phases", default="idle,before,before-switch,thread,process")
    parser.add_argument(
        "--repeat", type=int, default=3, help="snapshots per phase (samples merged, mean duration)"
    )
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--dir", default=None, help="where the scratch environment goes")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    scratch = tempfile.mkdtemp(prefix="doq-bench-snapshot-stall-", dir=args.dir)
    try:
        started = time.perf_counter()
        bench = build_state(f"{scratch}/state", args.messages, args.queues, args.inflight)
        size = os.path.getsize(f"{scratch}/state/data.mdb")
        print(
            f"built {args.messages:,} messages in {args.queues} queues ({args.inflight:,} in "
            f"flight) in {time.perf_counter() - started:.1f} s; data.mdb {size / 2**20:.0f} MiB"
        )
        if args.profile:
            profile(bench, scratch)
        results = trio.run(measure, bench, scratch, args)
        snap = os.path.getsize(os.path.join(scratch, "snap"))
        print(f"snapshot file {snap / 2**20:.1f} MiB")
        report(results)
        bench.sm.close()
        if args.json:
            print(json.dumps(results))
        return 0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
