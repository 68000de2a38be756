"""Benchmark of the Raft library: a 3-node cluster on 127.0.0.1, three processes, durable LMDB
logs, a no-op state machine, 100-byte proposals. Prints committed proposals per second and the
commit latency (propose() call to applied result on the leader) for 1 and 64 concurrent
proposers, which run as Trio tasks inside the leader's process.

    python -m raft_zmq.bench [--seconds 10] [--proposers 1,64] [--json] [--no-sync]
                             [--curve off|on|both]

``--curve on`` runs the cluster with CURVE-authenticated, encrypted links (raft_zmq/curve.py);
``both`` runs it without and then with, in one invocation, and prints the ratio. The parent hands
the key to its nodes in ``CURVE_KEY_ENV``, never on a command line.

The parent starts the nodes (``python -m raft_zmq.bench _node ...``), finds the leader through a
line protocol on their stdin/stdout, asks it to run each load phase, and stops every node by PID.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import trio

from raft_zmq.core.types import ClusterConfig, Entry, Server
from raft_zmq.curve import ClusterKey
from raft_zmq.node import NodeConfig, RaftNode

PAYLOAD_BYTES = 100
CURVE_KEY_ENV = "RAFT_ZMQ_BENCH_CURVE_KEY"
NODE_START_TIMEOUT_S = 30.0
WARMUP_S = 1.0


class NoopStateMachine:
    """Applies nothing; remembers only the applied index (the benchmark measures consensus)."""

    def __init__(self) -> None:
        self._applied = (0, 0)

    def last_applied(self) -> tuple[int, int]:
        return self._applied

    def apply(self, entries: Sequence[Entry]) -> list[Any]:
        self._applied = (entries[-1].index, entries[-1].term)
        return [None] * len(entries)

    def snapshot(self, path: str) -> tuple[int, int]:
        with open(path, "wb") as f:
            f.write(b"noop")
            os.fsync(f.fileno())
        return self._applied

    def restore(self, path: str) -> tuple[int, int]:
        raise RuntimeError("the no-op benchmark state machine cannot restore")

    def close(self) -> None:
        pass


# --- node process --------------------------------------------------------------------------------


async def _run_load(node: RaftNode, proposers: int, seconds: float) -> dict[str, Any]:
    payload = os.urandom(PAYLOAD_BYTES)
    latencies: list[float] = []
    errors = 0
    measuring = False
    deadline = trio.current_time() + WARMUP_S + seconds

    async def proposer() -> None:
        nonlocal errors
        while trio.current_time() < deadline:
            start = trio.current_time()
            try:
                await node.propose(payload)
            except Exception:
                errors += 1
                await trio.sleep(0.001)
                continue
            if measuring:
                latencies.append(trio.current_time() - start)

    assert node.core is not None
    term_before = node.core.term
    async with trio.open_nursery() as nursery:
        for _ in range(proposers):
            nursery.start_soon(proposer)
        await trio.sleep(WARMUP_S)
        measuring = True
        started = trio.current_time()
        applied_before = node.stats["entries_applied"]
        rounds_before = node.stats["rounds"]
        await trio.sleep_until(deadline)
        elapsed = trio.current_time() - started
        applied = node.stats["entries_applied"] - applied_before
        rounds = node.stats["rounds"] - rounds_before
    latencies.sort()
    return {
        "proposers": proposers,
        "proposals_per_s": round(len(latencies) / elapsed),
        "p50_ms": round(1000 * _percentile(latencies, 0.50), 3),
        "p99_ms": round(1000 * _percentile(latencies, 0.99), 3),
        "mean_batch_entries": round(applied / rounds, 1) if rounds else 0,
        "errors": errors,
        "elections": node.core.term - term_before,  # 0: leadership held under full load
    }


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


async def _node_main(args: argparse.Namespace) -> None:
    servers = tuple(Server(f"n{i}", addr) for i, addr in enumerate(args.peers.split(",")))
    config = NodeConfig(
        node_id=args.id,
        raft_address=next(s.address for s in servers if s.id == args.id),
        data_dir=os.path.join(args.data, args.id),
        sync=not args.no_sync,
        persist_in_thread=args.thread_persist,
        cluster_key=ClusterKey.from_text(os.environ[CURVE_KEY_ENV]) if args.curve else None,
    )
    node = RaftNode(config, NoopStateMachine(), bootstrap=ClusterConfig(servers))
    stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        buffer = b""
        while True:
            chunk = await stdin.receive_some()
            if not chunk:
                break
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                words = line.decode().split()
                if not words or words[0] == "stop":
                    nursery.cancel_scope.cancel()
                    return
                if words[0] == "role":
                    reply: dict[str, Any] = {"leader": node.is_leader, "known": node.leader_id}
                else:  # load PROPOSERS SECONDS
                    reply = await _run_load(node, int(words[1]), float(words[2]))
                sys.stdout.write(json.dumps(reply) + "\n")
                sys.stdout.flush()
        nursery.cancel_scope.cancel()


# --- the parent ----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Proc:
    def __init__(self, argv: list[str]) -> None:
        self.popen = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )

    def ask(self, line: str) -> dict[str, Any]:
        assert self.popen.stdin is not None and self.popen.stdout is not None
        self.popen.stdin.write(line + "\n")
        self.popen.stdin.flush()
        answer = self.popen.stdout.readline()
        if not answer:
            raise RuntimeError(f"node process {self.popen.pid} exited ({self.popen.poll()})")
        return json.loads(answer)

    def stop(self) -> None:
        if self.popen.poll() is None:
            try:
                assert self.popen.stdin is not None
                self.popen.stdin.write("stop\n")
                self.popen.stdin.flush()
                self.popen.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.popen.kill()
                self.popen.wait()


def _find_leader(procs: list[_Proc]) -> _Proc:
    deadline = time.monotonic() + NODE_START_TIMEOUT_S
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.ask("role")["leader"]:
                return proc
        time.sleep(0.05)
    raise RuntimeError("no leader was elected")


def run(args: argparse.Namespace, *, curve: bool = False) -> dict[str, Any]:
    data = args.data_dir or tempfile.mkdtemp(prefix="raft-bench-")
    peers = ",".join(f"127.0.0.1:{_free_port()}" for _ in range(3))
    flags = (
        (["--no-sync"] if args.no_sync else [])
        + (["--thread-persist"] if args.thread_persist else [])
        + (["--curve"] if curve else [])
    )
    if curve:
        os.environ[CURVE_KEY_ENV] = ClusterKey.generate().secret.decode()
    procs = [
        _Proc(
            [
                sys.executable,
                "-m",
                "raft_zmq.bench",
                "_node",
                "--id",
                f"n{i}",
                "--peers",
                peers,
                "--data",
                data,
                *flags,
            ]
        )
        for i in range(3)
    ]
    try:
        leader = _find_leader(procs)
        phases = [leader.ask(f"load {p} {args.seconds}") for p in args.proposers]
    finally:
        for proc in procs:
            proc.stop()
        if not args.data_dir:
            shutil.rmtree(data, ignore_errors=True)
    return {"phases": phases}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_node"]:
        parser = argparse.ArgumentParser(prog="raft_zmq.bench _node")
        parser.add_argument("--id", required=True)
        parser.add_argument("--peers", required=True)
        parser.add_argument("--data", required=True)
        parser.add_argument("--no-sync", action="store_true")
        parser.add_argument("--thread-persist", action="store_true")
        parser.add_argument("--curve", action="store_true")
        args = parser.parse_args(argv[1:])
        random.seed()
        trio.run(_node_main, args)
        return 0
    parser = argparse.ArgumentParser(prog="python -m raft_zmq.bench", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="each phase (default 10)")
    parser.add_argument("--proposers", default="1,64", help="comma-separated phases")
    parser.add_argument("--json", action="store_true", help="last line: one JSON object")
    parser.add_argument("--no-sync", action="store_true", help="no fsync (not durable)")
    parser.add_argument(
        "--thread-persist",
        action="store_true",
        help="fsync in a worker thread instead of the Trio thread (the default)",
    )
    parser.add_argument("--data-dir", help="keep the nodes' data here (default: a temp dir)")
    parser.add_argument(
        "--curve",
        choices=("off", "on", "both"),
        default="off",
        help="CURVE on the peer links; both: off then on, in this run (default off)",
    )
    args = parser.parse_args(argv)
    args.proposers = [int(p) for p in args.proposers.split(",")]
    if args.curve == "both":
        return _compare_curve(args)
    result = run(args, curve=args.curve == "on")
    _print(args, result, curve=args.curve == "on")
    if args.json:
        print(json.dumps(_summary(args, result)))
    return 0


def _compare_curve(args: argparse.Namespace) -> int:
    results = {curve: run(args, curve=curve) for curve in (False, True)}
    for curve, result in results.items():
        _print(args, result, curve=curve)
    for plain, secure in zip(results[False]["phases"], results[True]["phases"]):
        ratio = secure["proposals_per_s"] / max(plain["proposals_per_s"], 1)
        print(f"  {plain['proposers']:>3} proposers: CURVE on / off = {ratio:.2f}")
    return 0


def _print(args: argparse.Namespace, result: dict[str, Any], *, curve: bool) -> None:
    print(
        f"raft_zmq bench: 3 nodes on 127.0.0.1, {platform.node()}, {os.cpu_count()} cores, "
        f"durable={not args.no_sync}, {PAYLOAD_BYTES} B proposals, curve={'on' if curve else 'off'}"
    )
    for phase in result["phases"]:
        print(
            f"  {phase['proposers']:>3} proposers: {phase['proposals_per_s']:>8} proposals/s  "
            f"p50 {phase['p50_ms']:.3f} ms  p99 {phase['p99_ms']:.3f} ms  "
            f"(mean batch {phase['mean_batch_entries']} entries, errors {phase['errors']}, "
            f"elections {phase['elections']})"
        )


def _summary(args: argparse.Namespace, result: dict[str, Any]) -> dict[str, Any]:
    main_phase = max(result["phases"], key=lambda p: p["proposers"])
    single = min(result["phases"], key=lambda p: p["proposers"])
    return {
        "proposals_per_s": main_phase["proposals_per_s"],
        "p50_ms": main_phase["p50_ms"],
        "p99_ms": main_phase["p99_ms"],
        "proposers": main_phase["proposers"],
        "durable": not args.no_sync,
        "nodes": 3,
        "single_proposer": {k: single[k] for k in ("proposals_per_s", "p50_ms", "p99_ms")},
    }


if __name__ == "__main__":
    sys.exit(main())
