"""``doq devcluster``: a local cluster for development, one process per node on 127.0.0.1.

Node i listens for HTTP on 8000 + i, for Raft on 9000 + i and for gRPC on 10000 + i (the Go
server's service, docs/grpc.md) and keeps its data under
``<data-dir>/node-i``. Node 1 bootstraps the cluster; the others join through it. Ctrl-C (or
SIGTERM) stops every node gracefully and waits for them; a node that does not stop in time is
killed. The children run in their own sessions, so the terminal's Ctrl-C reaches only this process,
which then stops the nodes in order.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from types import FrameType

import httpx

HTTP_PORT_BASE = 8000
RAFT_PORT_BASE = 9000
GRPC_PORT_BASE = 10000
HOST = "127.0.0.1"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
POLL_INTERVAL_S = 0.2


class _Stop(Exception):
    pass


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)


def start_node(
    node: int,
    data_dir: str,
    http_port: int,
    raft_port: int,
    join_port: int | None,
    log_level: str,
    grpc_port: int | None = None,
) -> subprocess.Popen[bytes]:
    """Start node-<node> as a child process in its own session (stop it with ``stop_all``)."""
    argv = [sys.executable, "-m", "doq", "--cluster.node_id", f"node-{node}"]
    argv += ["--storage.data_dir", data_dir, "--http.host", HOST, "--http.port", str(http_port)]
    argv += ["--raft.address", f"{HOST}:{raft_port}", "--logging.level", log_level]
    if join_port is not None:
        argv += ["--cluster.join_addr", f"{HOST}:{join_port}"]
    if grpc_port is not None:
        argv += ["--grpc.address", f"{HOST}:{grpc_port}"]
    return subprocess.Popen(argv, start_new_session=True)


def _start(node: int, args: argparse.Namespace) -> subprocess.Popen[bytes]:
    join = HTTP_PORT_BASE + 1 if node > 1 else None
    return start_node(
        node,
        args.data_dir,
        HTTP_PORT_BASE + node,
        RAFT_PORT_BASE + node,
        join,
        args.log_level,
        GRPC_PORT_BASE + node,
    )


def wait_for_voters(
    procs: list[subprocess.Popen[bytes]], count: int, http_port: int = HTTP_PORT_BASE + 1
) -> dict:
    """Wait until the node on ``http_port`` lists ``count`` voters and a leader."""
    deadline = time.monotonic() + START_TIMEOUT_S
    url = f"http://{HOST}:{http_port}/API/v1/cluster/servers"
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            for i, proc in enumerate(procs, start=1):
                if proc.poll() is not None:
                    raise RuntimeError(f"node-{i} exited with status {proc.returncode}")
            try:
                body = client.get(url).json()
                voters = [s for s in body.get("servers", []) if s.get("suffrage") == "Voter"]
                if len(voters) == count and any(s.get("is_leader") for s in voters):
                    return body
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(POLL_INTERVAL_S)
    raise RuntimeError(f"the cluster did not form within {START_TIMEOUT_S:.0f} s")


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every child, wait, and kill whatever does not stop in time."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for i, proc in enumerate(procs, start=1):
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"node-{i} did not stop in time; killing pid {proc.pid}", file=sys.stderr)
            proc.kill()
            proc.wait()


def _print_banner(servers: dict, count: int) -> None:
    leader = next(s for s in servers["servers"] if s.get("is_leader"))
    print(f"\ndoq: a {count}-node cluster is running (leader: {leader['id']})", flush=True)
    for node in range(1, count + 1):
        print(
            f"  node-{node}: http://{HOST}:{HTTP_PORT_BASE + node}   "
            f"raft {HOST}:{RAFT_PORT_BASE + node}"
        )
    print(f"  API docs: http://{HOST}:{HTTP_PORT_BASE + 1}/docs")
    print("  Any node accepts any request. Ctrl-C stops the cluster.\n", flush=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="doq devcluster", description=__doc__)
    parser.add_argument("--nodes", type=int, default=3, choices=range(1, 10), metavar="N")
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(_start(1, args))
        for node in range(2, args.nodes + 1):
            procs.append(_start(node, args))
        _print_banner(wait_for_voters(procs, args.nodes), args.nodes)
        while all(proc.poll() is None for proc in procs):
            time.sleep(POLL_INTERVAL_S)
        failed = [f"node-{i}" for i, p in enumerate(procs, start=1) if p.poll() is not None]
        print(f"doq: {', '.join(failed)} exited; stopping the others", file=sys.stderr)
        return 1
    except _Stop as stop:
        print(f"\ndoq: {stop}: stopping the cluster", flush=True)
        return 0
    except RuntimeError as exc:
        print(f"doq: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stop_all(procs)
