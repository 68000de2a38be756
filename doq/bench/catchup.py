"""``python -m doq.bench.catchup``: how long a new follower takes to catch up with a leader whose
queue holds ``--messages`` messages (1,000,000 by default), with the snapshot stream's window at
one chunk in flight (the stream as it was: each 1 MiB chunk waited for its acknowledgement) and
at ``SNAPSHOT_CHUNKS_IN_FLIGHT_MAX`` (raft_zmq/driver/chunk_sender.py), in one run.

One process, real nodes (raft_zmq.node.RaftNode over ZeroMQ on 127.0.0.1, LMDB log, the real
queue state machine). The leader is a single voter; its queue is filled through Raft with
enqueues of 1,000 messages each; its log is then compacted behind a snapshot, so a follower added
empty must be sent the snapshot. Each measurement adds a fresh non-voter and times it from the
configuration change to having applied the leader's commit index (stream, verify, install,
restore; the time until it holds the whole snapshot file is reported too), then removes it.
``--delay-ms`` adds a one-way latency to every message (the transport's fault layer), as on a
network between machines rather than loopback. The windows alternate (1, W, 1, W, ...) so that
a warmer page cache favours neither. With ``--json`` the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import sys
import tempfile
import time

import attrs
import trio

from doq.commands import CreateQueue, Enqueue, NewMessage, QueueType, encode_command
from doq.state.machine import QueueStateMachine
from raft_zmq.core.ready import ConfigChange, ConfigChangeKind
from raft_zmq.core.types import ClusterConfig, Server
from raft_zmq.driver.limits import SNAPSHOT_CHUNKS_IN_FLIGHT_MAX
from raft_zmq.faults import FaultSpec
from raft_zmq.node import NodeConfig, RaftNode

MESSAGES_PER_ENQUEUE = 1_000
PROPOSERS = 8
CONTENT = "x" * 100  # a typical small message body
START_MS = 1_750_000_000_000
ACK_TIMEOUT_S = 1800
DEADLINE_S = 600


def _free_address() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def _node(
    root: str, node_id: str, commands: int, delay_ms: float, *, alone: bool = False
) -> tuple[RaftNode, QueueStateMachine]:
    """A node; ``alone``: bootstrapped as the only voter of a new cluster. ``delay_ms`` delays
    every message it sends by exactly that much (a link's one-way latency; a constant delay
    reorders nothing)."""
    delay_s = delay_ms / 1000
    faults = FaultSpec(delay_min_s=delay_s, delay_max_s=delay_s) if delay_ms else None
    directory = os.path.join(root, node_id)
    address = _free_address()
    bootstrap = ClusterConfig((Server(node_id, address),)) if alone else None
    config = NodeConfig(
        node_id=node_id,
        raft_address=address,
        data_dir=directory,
        snapshot_interval_entries=commands,  # one snapshot, once the queue is full
        snapshot_trailing_entries=1,
        faults=faults,
    )
    state = QueueStateMachine(os.path.join(directory, "state"))
    node = RaftNode(config, state, bootstrap=bootstrap, rng=random.Random(node_id))
    return node, state


async def _fill(leader: RaftNode, messages: int) -> None:
    create = CreateQueue(START_MS, "q", QueueType.DELAYED, ACK_TIMEOUT_S)
    await leader.propose(encode_command(create))
    batches = list(range(0, messages, MESSAGES_PER_ENQUEUE))

    async def proposer(worker: int) -> None:
        for first in batches[worker::PROPOSERS]:
            count = min(MESSAGES_PER_ENQUEUE, messages - first)
            news = tuple(NewMessage(first + i + 1, 0, CONTENT) for i in range(count))
            await leader.propose(encode_command(Enqueue(START_MS, "q", news)))

    async with trio.open_nursery() as nursery:
        for worker in range(PROPOSERS):
            nursery.start_soon(proposer, worker)


async def _catch_up(
    root: str, leader: RaftNode, name: str, window: int, commands: int, delay_ms: float
) -> tuple[float, float]:
    """Seconds until the follower holds the whole snapshot file, and until it has caught up."""
    assert leader.driver is not None and leader.core is not None
    meta = leader.core.latest_snapshot
    assert meta is not None
    options = leader.driver.options
    stream = attrs.evolve(options.stream, chunks_in_flight_max=window)
    leader.driver.options = attrs.evolve(options, stream=stream)
    follower, state = _node(root, name, commands, delay_ms)
    streamed: list[float] = []

    async def watch_stream(started: float) -> None:
        while follower.snapshots is None or follower.snapshots.find(meta.index, meta.term) is None:
            await trio.sleep(0.002)
        streamed.append(time.perf_counter() - started)

    async with trio.open_nursery() as nursery:
        await nursery.start(follower.run)
        target = leader.applied_index
        started = time.perf_counter()
        nursery.start_soon(watch_stream, started)
        change = ConfigChange(ConfigChangeKind.ADD_NONVOTER, name, follower.address)
        await leader.change_config(change)
        await follower.wait_applied(target)
        elapsed = time.perf_counter() - started
        await leader.change_config(ConfigChange(ConfigChangeKind.REMOVE, name))
        nursery.cancel_scope.cancel()
    state.close()
    shutil.rmtree(os.path.join(root, name))
    return streamed[0], elapsed


async def _run(args: argparse.Namespace, root: str) -> dict[str, object]:
    commands = 1 + -(-args.messages // MESSAGES_PER_ENQUEUE)
    leader, state = _node(root, "leader", commands, args.delay_ms, alone=True)
    times: dict[int, list[float]] = {1: [], args.window: []}
    streams: dict[int, list[float]] = {1: [], args.window: []}
    async with trio.open_nursery() as nursery:
        await nursery.start(leader.run)
        await leader.wait_leader()
        filled = time.perf_counter()
        await _fill(leader, args.messages)
        fill_s = time.perf_counter() - filled
        assert leader.core is not None and leader.snapshots is not None
        while leader.core.latest_snapshot is None or leader.core.log.first_index() <= 2:
            await trio.sleep(0.05)
        snapshot = leader.snapshots.latest()
        assert snapshot is not None
        for round_ in range(args.rounds):
            for window in (1, args.window):
                name = f"f{round_}w{window}"
                stream_s, elapsed = await _catch_up(
                    root, leader, name, window, commands, args.delay_ms
                )
                times[window].append(elapsed)
                streams[window].append(stream_s)
                print(
                    f"window {window}: streamed in {stream_s:.2f} s, caught up in {elapsed:.2f} s",
                    file=sys.stderr,
                    flush=True,
                )
        nursery.cancel_scope.cancel()
    state.close()
    best = {w: min(t) for w, t in times.items()}
    best_stream = {w: min(t) for w, t in streams.items()}
    return {
        "messages": args.messages,
        "snapshot_bytes": snapshot.size_bytes,
        "one_way_delay_ms": args.delay_ms,
        "fill_s": round(fill_s, 2),
        "stream_s": {str(w): [round(t, 2) for t in ts] for w, ts in streams.items()},
        "catch_up_s": {str(w): [round(t, 2) for t in ts] for w, ts in times.items()},
        "stream_speedup_best": round(best_stream[1] / best_stream[args.window], 2),
        "catch_up_speedup_best": round(best[1] / best[args.window], 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m doq.bench.catchup", description=__doc__)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--window", type=int, default=SNAPSHOT_CHUNKS_IN_FLIGHT_MAX)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--delay-ms", type=float, default=0.0, help="one-way link latency")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    root = tempfile.mkdtemp(prefix="doq-catchup-")
    try:
        result = trio.run(_run, args, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
