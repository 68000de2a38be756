"""``doq bench compare``: the HTTP stack's ceiling and a 3-node doq cluster, in one run.

Each target runs in its own processes and is loaded by the same generator (``doq bench http``,
its own process too), one after the other, so that the ratios compare like with like on the
same machine at the same time:

1. a bare ASGI app on Hypercorn's trio worker (the HTTP server's ceiling);
2. a trivial Quart-Trio JSON endpoint on Hypercorn (the framework's ceiling);
3. a 3-node doq cluster on 127.0.0.1, enqueue then dequeue-with-ack through the leader;
4. the same cluster through a follower (every request forwarded to the leader).

    doq bench compare [--connections 16] [--seconds 10] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

import httpx

from doq.devcluster import HOST, start_node, stop_all, wait_for_voters

SERVER_START_TIMEOUT_S = 30.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _wait_http(url: str) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {SERVER_START_TIMEOUT_S:.0f} s")


def _load(url: str, args: argparse.Namespace) -> dict[str, Any]:
    argv = [sys.executable, "-m", "doq", "bench", "http", "--url", url, "--json"]
    argv += ["--connections", str(args.connections), "--seconds", str(args.seconds)]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _trivial(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    port = _free_port()
    argv = [sys.executable, "-m", "doq", "bench", "http", "--serve-trivial", str(port)]
    server = subprocess.Popen([*argv, "--trivial", kind], start_new_session=True)
    try:
        _wait_http(f"http://{HOST}:{port}/")
        return _load(f"http://{HOST}:{port}", args)
    finally:
        stop_all([server])


def _cluster(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    data = tempfile.mkdtemp(prefix="doq-bench-")
    ports = [(_free_port(), _free_port()) for _ in range(3)]
    procs = []
    try:
        for node, (http_port, raft_port) in enumerate(ports, start=1):
            join = ports[0][0] if node > 1 else None
            procs.append(start_node(node, data, http_port, raft_port, join, "warning"))
        servers = wait_for_voters(procs, 3, http_port=ports[0][0])["servers"]
        leader = next(s for s in servers if s["is_leader"])
        follower = next(s for s in servers if not s["is_leader"])
        via_leader = _load(f"http://{leader['http_addr']}", args)
        via_follower = _load(f"http://{follower['http_addr']}", args)
        return via_leader, via_follower
    finally:
        stop_all(procs)
        shutil.rmtree(data, ignore_errors=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="doq bench compare", description=__doc__)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--json", action="store_true", help="last line: one JSON object")
    args = parser.parse_args(argv)
    asgi = _trivial("asgi", args)
    quart = _trivial("quart", args)
    leader, follower = _cluster(args)
    rows = [
        ("bare ASGI on Hypercorn", asgi),
        ("trivial Quart-Trio", quart),
        ("doq 3 nodes, via the leader", leader),
        ("doq 3 nodes, via a follower", follower),
    ]
    print(f"{os.cpu_count()} cores, {args.connections} connections, {args.seconds:g} s a phase")
    for name, r in rows:
        print(
            f"  {name:<30} enqueue {r['enqueue_rps']:>6} req/s "
            f"(p50 {r['enqueue_p50_ms']:.2f} ms, p99 {r['enqueue_p99_ms']:.2f} ms)  "
            f"dequeue {r['dequeue_rps']:>6} req/s"
        )
    summary = {
        "connections": args.connections,
        "ceiling_asgi_rps": asgi["enqueue_rps"],
        "ceiling_quart_rps": quart["enqueue_rps"],
        "enqueue_rps": leader["enqueue_rps"],
        "enqueue_p50_ms": leader["enqueue_p50_ms"],
        "enqueue_p99_ms": leader["enqueue_p99_ms"],
        "dequeue_rps": leader["dequeue_rps"],
        "via_follower_enqueue_rps": follower["enqueue_rps"],
        "ratio_vs_asgi": round(leader["enqueue_rps"] / asgi["enqueue_rps"], 3),
        "ratio_vs_quart": round(leader["enqueue_rps"] / quart["enqueue_rps"], 3),
    }
    print(
        f"  doq via the leader: {summary['ratio_vs_asgi']:.0%} of bare ASGI, "
        f"{summary['ratio_vs_quart']:.0%} of trivial Quart-Trio"
    )
    if args.json:
        print(json.dumps(summary))
    return 0
