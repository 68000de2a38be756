"""Finding 4 of docs/reliability.md: libzmq 4.3.5 aborts a node when a peer's connection is reset
while ZeroMQ has stopped reading it (its receive queue full, our node busy) and a ZMTP heartbeat
then writes to it. The transport turns ZMTP heartbeats off and leaves dead connections to the
kernel (docs/transport.md, "No ZMTP heartbeats").

The two scenarios run as child processes (reset_while_stopped.py): one of them aborts.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio
import zmq

from raft_zmq.transport import Transport, TransportConfig

SCRIPT = Path(__file__).with_name("reset_while_stopped.py")
REPOSITORY = Path(__file__).resolve().parents[2]
CHILD_DEADLINE_S = 60.0

pytestmark = pytest.mark.skipif(
    not Path("/proc/net/tcp").exists(), reason="the scenario reads the kernel's TCP table"
)


def _run(mode: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPOSITORY))
    return subprocess.run(
        [sys.executable, str(SCRIPT), mode],
        capture_output=True,
        text=True,
        timeout=CHILD_DEADLINE_S,
        env=env,
        check=False,
    )


def test_libzmq_aborts_when_a_zmtp_heartbeat_follows_a_reset_on_a_stopped_connection() -> None:
    """The upstream bug, pinned: a plain ROUTER with heartbeats dies in this scenario. If this
    test starts failing, the libzmq in use no longer aborts, and the note in docs/transport.md
    should say which version fixed it."""
    result = _run("heartbeats")
    assert result.returncode == -signal.SIGABRT, (result.returncode, result.stdout, result.stderr)
    assert "Assertion failed: !_io_error" in result.stderr, result.stderr


def test_the_transport_survives_a_reset_on_a_stopped_connection() -> None:
    """The same scenario against a Transport whose receive loop is held up: it reads what was
    queued, lets the dead connection go, and hears the peer again on a new one."""
    result = _run("transport")
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    assert "survived" in result.stdout, result.stdout


async def test_every_socket_of_the_transport_leaves_dead_connections_to_the_kernel() -> None:
    config = TransportConfig(dead_connection_timeout_ms=4_000, keepalive_idle_s=3)
    a = Transport("a", "127.0.0.1:0", config=config)
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        a.set_peers({"b": "127.0.0.1:1", "c": "127.0.0.1:2"})
        sockets = [a._router.zmq_socket] + [peer.socket.zmq_socket for peer in a._peers.values()]
        assert len(sockets) == 3
        for sock in sockets:
            assert sock.getsockopt(zmq.HEARTBEAT_IVL) == 0
            assert sock.getsockopt(zmq.TCP_MAXRT) == 4_000
            assert sock.getsockopt(zmq.TCP_KEEPALIVE) == 1
            assert sock.getsockopt(zmq.TCP_KEEPALIVE_IDLE) == 3
            assert sock.getsockopt(zmq.TCP_KEEPALIVE_INTVL) == config.keepalive_interval_s
            assert sock.getsockopt(zmq.TCP_KEEPALIVE_CNT) == 5  # 4 s / 1 s, plus one
        await a.aclose()
