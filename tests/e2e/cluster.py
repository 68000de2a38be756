"""Real doq node processes, started through the launcher on 127.0.0.1 and stopped by PID.

A ``ProcessCluster`` owns its processes: every test that makes one stops it (the fixture's
finalizer sends SIGTERM, then SIGKILL to whatever did not stop in time). Waiting is polling with a
deadline, never a fixed sleep.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx

from ..support import free_port

STARTUP_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0
POLL_S = 0.05


def wait_for(predicate: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            last_error = exc
        time.sleep(POLL_S)
    raise AssertionError(f"timed out waiting for {what} (last error: {last_error!r})")


class NodeProcess:
    def __init__(self, root: str, index: int, join: str | None, extra: list[str]) -> None:
        self.id = f"node-{index}"
        self.http_port = free_port()
        self.raft_port = free_port()
        self.root = root
        self.join = join
        self.extra = extra
        self.popen: subprocess.Popen[bytes] | None = None
        self.log_path = os.path.join(root, f"{self.id}.log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def http_address(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    def start(self) -> None:
        argv = [
            sys.executable,
            "-m",
            "doq",
            "--cluster.node_id",
            self.id,
            "--storage.data_dir",
            os.path.join(self.root, "data"),
            "--http.host",
            "127.0.0.1",
            "--http.port",
            str(self.http_port),
            "--raft.address",
            f"127.0.0.1:{self.raft_port}",
            "--raft.tick_ms",
            "20",
            "--raft.election_timeout_ticks",
            "15",
            "--raft.heartbeat_ticks",
            "2",
            "--http.request_timeout",
            "5",
            *self.extra,
        ]
        if self.join:
            argv += ["--cluster.join_addr", self.join]
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it until it exits
        self.popen = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, signum: int) -> None:
        assert self.popen is not None
        os.kill(self.popen.pid, signum)

    def kill(self) -> None:
        """kill -9: no chance to flush anything that was not already durable."""
        self.signal(signal.SIGKILL)
        assert self.popen is not None
        self.popen.wait(timeout=STOP_TIMEOUT_S)

    def stop(self) -> int:
        """SIGTERM and wait; SIGKILL if it does not stop in time. Returns the exit status."""
        if self.popen is None:
            return 0
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode

    def log(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()


class ProcessCluster:
    def __init__(self, root: str, size: int = 3, extra: list[str] | None = None) -> None:
        self.root = root
        self.nodes: list[NodeProcess] = []
        self.client = httpx.Client(timeout=10.0)
        first = NodeProcess(root, 1, None, extra or [])
        self.nodes.append(first)
        for index in range(2, size + 1):
            self.nodes.append(NodeProcess(root, index, first.http_address, extra or []))

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        self.wait_for_voters(len(self.nodes))

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        self.client.close()

    def get(self, node: NodeProcess, path: str, **kw: Any) -> httpx.Response:
        return self.client.get(node.url + path, **kw)

    def post(self, node: NodeProcess, path: str, **kw: Any) -> httpx.Response:
        return self.client.post(node.url + path, **kw)

    def servers(self, node: NodeProcess) -> list[dict[str, Any]]:
        return self.get(node, "/API/v1/cluster/servers").json()["servers"]

    def wait_for_voters(self, count: int, via: NodeProcess | None = None) -> None:
        def formed() -> bool:
            servers = self.servers(via or self.nodes[0])
            voters = [s for s in servers if s["suffrage"] == "Voter"]
            return len(voters) == count and any(s["is_leader"] for s in servers)

        wait_for(formed, STARTUP_TIMEOUT_S, f"{count} voters and a leader")

    def leader(self, among: list[NodeProcess] | None = None) -> NodeProcess:
        candidates = [n for n in (among or self.nodes) if n.alive]

        def find() -> NodeProcess | None:
            for node in candidates:
                for server in self.servers(node):
                    if server["is_leader"]:
                        match = [n for n in candidates if n.id == server["id"]]
                        if match:
                            return match[0]
            return None

        return wait_for(find, STARTUP_TIMEOUT_S, "a leader")

    def followers(self) -> list[NodeProcess]:
        leader = self.leader()
        return [n for n in self.nodes if n is not leader and n.alive]
