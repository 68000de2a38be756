"""``doq bench throughput``: every figure of issue 8's benchmark, one command, one run.

    doq bench throughput [--seconds 10] [--short] [--json]

On this machine, with 100-byte messages and durable writes (fsync on a majority before the
answer), each load its own process (``doq bench http``, ``doq bench stream``), one after the
other:

- the bare ASGI app on Hypercorn's Trio worker at 1 and 64 connections (the HTTP ceiling of the
  same run, for the ratios);
- a 3-node cluster on 127.0.0.1 (doq/devcluster.py), and through its leader: batch enqueue
  (100 messages a request, 16 connections) and batch dequeue (count 100) plus batch ack;
  streaming enqueue and streaming consume+ack (credit 256, acks on the socket); the wake-up
  latency of a long-polling consumer (p50, p99);
- single-message enqueue via the leader and via a follower at 1 and 64 connections (req/s, p50).

``--short`` runs each phase for 1 s and 10 wake-ups: it proves the command works, it measures
nothing worth quoting. ``--json`` prints one object with all figures as its last line
(docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from typing import Any

from doq.bench.compare import _free_port, _trivial
from doq.devcluster import start_node, stop_all, wait_for_voters

BATCH_MESSAGES = 100
BATCH_CONNECTIONS = 16
SINGLE_CONNECTIONS = (1, 64)
SHORT_SECONDS = 1.0
SHORT_WAKEUPS = 10


def _http(url: str, connections: int, seconds: float, batch: int = 0) -> dict[str, Any]:
    argv = [sys.executable, "-m", "doq", "bench", "http", "--url", url, "--json"]
    argv += ["--connections", str(connections), "--seconds", str(seconds)]
    if batch:
        argv += ["--batch", str(batch)]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _stream(url: str, seconds: float, wakeups: int) -> dict[str, Any]:
    argv = [sys.executable, "-m", "doq", "bench", "stream", "--url", url, "--json"]
    argv += ["--seconds", str(seconds), "--wakeups", str(wakeups)]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _ceiling(seconds: float) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for connections in SINGLE_CONNECTIONS:
        load = _trivial("asgi", argparse.Namespace(connections=connections, seconds=seconds))
        figures[f"asgi_c{connections}_rps"] = load["enqueue_rps"]
        figures[f"asgi_c{connections}_p50_ms"] = load["enqueue_p50_ms"]
    return figures


def _cluster_figures(seconds: float, wakeups: int) -> dict[str, Any]:
    data = tempfile.mkdtemp(prefix="doq-bench-")
    ports = [(_free_port(), _free_port()) for _ in range(3)]
    procs = []
    try:
        for node, (http_port, raft_port) in enumerate(ports, start=1):
            join = ports[0][0] if node > 1 else None
            procs.append(start_node(node, data, http_port, raft_port, join, "warning"))
        servers = wait_for_voters(procs, 3, http_port=ports[0][0])["servers"]
        leader = "http://" + next(s for s in servers if s["is_leader"])["http_addr"]
        follower = "http://" + next(s for s in servers if not s["is_leader"])["http_addr"]
        batch = _http(leader, BATCH_CONNECTIONS, seconds, BATCH_MESSAGES)
        figures: dict[str, Any] = {
            "batch_enqueue_messages_per_s": batch["enqueue_messages_per_s"],
            "batch_consume_ack_messages_per_s": batch["dequeue_messages_per_s"],
        }
        figures.update(_stream(leader, seconds, wakeups))
        for via, url in (("leader", leader), ("follower", follower)):
            for connections in SINGLE_CONNECTIONS:
                load = _http(url, connections, seconds)
                figures[f"single_{via}_c{connections}_rps"] = load["enqueue_rps"]
                figures[f"single_{via}_c{connections}_p50_ms"] = load["enqueue_p50_ms"]
        return figures
    finally:
        stop_all(procs)
        shutil.rmtree(data, ignore_errors=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="doq bench throughput", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    parser.add_argument("--short", action="store_true", help="1 s phases: a smoke run")
    parser.add_argument("--json", action="store_true", help="last line: one JSON object")
    args = parser.parse_args(argv)
    seconds = SHORT_SECONDS if args.short else args.seconds
    wakeups = SHORT_WAKEUPS if args.short else 100
    figures: dict[str, Any] = {"cores": os.cpu_count(), "seconds": seconds}
    figures.update(_ceiling(seconds))
    figures.update(_cluster_figures(seconds, wakeups))
    print(f"{figures['cores']} cores, {seconds:g} s a phase, 3 nodes, 100-byte messages")
    for name, value in figures.items():
        if name not in ("cores", "seconds"):
            print(f"  {name:<40} {value:>12,.2f}")
    for connections in SINGLE_CONNECTIONS:
        ceiling = figures[f"asgi_c{connections}_rps"]
        if ceiling:
            ratio = figures[f"single_leader_c{connections}_rps"] / ceiling
            figures[f"single_leader_c{connections}_ratio_vs_asgi"] = round(ratio, 3)
    if args.json:
        print(json.dumps(figures))
    return 0
