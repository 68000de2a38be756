"""A peer's connection is reset while our ROUTER has stopped reading it: run as a child process by
tests/transport/test_transport_reset_while_stopped.py, since with ZMTP heartbeats on, libzmq 4.3.5
aborts the whole process (docs/transport.md, "No ZMTP heartbeats").

The peer is a raw TCP socket speaking ZMTP 3.0 (NULL mechanism) as a DEALER, so that it can end
with a reset (SO_LINGER 0) rather than a FIN. The steps:

1. the peer sends, in one write (one segment on the loopback), more messages than the ROUTER's
   receive queue holds: libzmq reads them in one go, fills the queue and stops reading the
   connection (``_input_stopped``);
2. once the kernel's table shows libzmq has read it all (the peer's bytes acknowledged, none left
   in our receive queue), the peer resets the connection;
3. the kernel drops the connection; libzmq, woken by the error, stops polling it (``_io_error``).

``python reset_while_stopped.py heartbeats``: a plain ROUTER with ZMTP heartbeats every 20 ms.
The next heartbeat writes to the dead connection, which libzmq asserts never happens: the process
aborts with ``Assertion failed: !_io_error``. If this mode ever exits 0, libzmq was fixed.

``python reset_while_stopped.py transport``: a ``raft_zmq`` Transport, its receive loop held up
(the Trio loop is blocked) over the three steps. It must then read what was queued, drop the
connection, and hear the same peer on a new connection: prints ``survived`` and exits 0.
"""

from __future__ import annotations

import socket
import struct
import sys
import time
from collections.abc import Callable

import zmq

ROUTER_QUEUE_MESSAGES = 10
BURST_MESSAGES = 200  # 600 bytes: one segment, well over the queue
DEADLINE_S = 20.0


def _greeting() -> bytes:
    mechanism = b"NULL".ljust(20, b"\0")
    return b"\xff" + bytes(8) + b"\x7f" + bytes([3, 0]) + mechanism + b"\0" + bytes(31)


def _property(name: bytes, value: bytes) -> bytes:
    return bytes([len(name)]) + name + struct.pack(">I", len(value)) + value


def _receive_exactly(peer: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = peer.recv(n - len(data))
        if not chunk:
            raise SystemExit("the ROUTER closed the connection during the handshake")
        data += chunk
    return data


def raw_dealer(port: int, identity: bytes) -> socket.socket:
    """A TCP connection through a ZMTP handshake as a DEALER named ``identity``, in the order a
    libzmq peer keeps: signature, then the rest of the greeting once the other side's signature is
    in, then READY once its whole greeting is in, and the other side's READY read."""
    peer = socket.create_connection(("127.0.0.1", port))
    peer.settimeout(DEADLINE_S)
    greeting = _greeting()
    peer.sendall(greeting[:10])
    _receive_exactly(peer, 10)
    peer.sendall(greeting[10:])
    _receive_exactly(peer, 64 - 10)
    ready = b"\x05READY" + _property(b"Socket-Type", b"DEALER") + _property(b"Identity", identity)
    peer.sendall(bytes([0x04, len(ready)]) + ready)
    flags, size = _receive_exactly(peer, 2)
    assert flags == 0x04, flags  # a short command: the ROUTER's READY
    _receive_exactly(peer, size)
    return peer


def _queues(local_port: int, remote_port: int) -> tuple[int, int] | None:
    """The kernel's (send queue, receive queue) in bytes for our end of a TCP connection on the
    loopback, or None once it is gone (a reset removes it). The send queue counts what the other
    end has not acknowledged, the receive queue what our process has not read."""
    with open("/proc/net/tcp") as table:
        for line in table.read().splitlines()[1:]:
            local, remote, _state, queues = line.split()[1:5]
            if local.endswith(f":{local_port:04X}") and remote.endswith(f":{remote_port:04X}"):
                tx, rx = queues.split(":")
                return int(tx, 16), int(rx, 16)
    return None


def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.005)  # polling with a deadline


def _all_read(peer: socket.socket, port: int) -> bool:
    """Whether libzmq has read everything the peer sent: acknowledged by the kernel, and no
    longer in our end's receive queue. Seen in the kernel's table, so that the ROUTER itself is
    left untouched (a call on it could take the wakeup that the Transport's reader waits for)."""
    peer_port = peer.getsockname()[1]
    ours, theirs = _queues(port, peer_port), _queues(peer_port, port)
    return ours is not None and theirs is not None and theirs[0] == 0 and ours[1] == 0


def frame(body: bytes) -> bytes:
    """One ZMTP 3.0 message frame (the last of its message)."""
    if len(body) < 256:
        return bytes([0, len(body)]) + body
    return b"\x02" + struct.pack(">Q", len(body)) + body


def stop_then_reset(port: int) -> None:
    """Steps 1 to 3 above, against a ROUTER listening on ``port``, which is not touched."""
    peer = raw_dealer(port, b"a")
    _until(lambda: _all_read(peer, port), "the handshake to be read")
    peer.sendall(b"".join(frame(b"x") for _ in range(BURST_MESSAGES)))
    _until(lambda: _all_read(peer, port), "the burst to be read")
    peer_port = peer.getsockname()[1]
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.close()  # a reset
    _until(lambda: _queues(port, peer_port) is None, "the kernel to drop the connection")


def heartbeats() -> None:
    context = zmq.Context()
    router = context.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    router.setsockopt(zmq.RCVHWM, ROUTER_QUEUE_MESSAGES)
    router.setsockopt(zmq.HEARTBEAT_IVL, 20)
    router.setsockopt(zmq.HEARTBEAT_TIMEOUT, 60_000)  # so that no timeout ends the connection
    router.setsockopt(zmq.HEARTBEAT_TTL, 60_000)
    router.bind("tcp://127.0.0.1:0")
    port = int(router.getsockopt(zmq.LAST_ENDPOINT).decode().rsplit(":", 1)[1])
    stop_then_reset(port)
    # Nothing reads the ROUTER, so the failed connection stays; the next heartbeat aborts us. (A
    # ZeroMQ socket never reports POLLERR: this waits out the deadline, unless the abort comes.)
    router.poll(int(DEADLINE_S * 1000), zmq.POLLERR)
    print("survived")


def transport() -> None:
    import trio

    from raft_zmq.codec import encode
    from raft_zmq.core.types import Heartbeat
    from raft_zmq.transport import Transport, TransportConfig

    async def main() -> None:
        config = TransportConfig(router_receive_hwm_messages=ROUTER_QUEUE_MESSAGES)
        b = Transport("b", "127.0.0.1:0", config=config)
        async with trio.open_nursery() as nursery:
            await nursery.start(b.run)
            port = int(b.address.rsplit(":", 1)[1])
            stop_then_reset(port)  # blocks the Trio loop: b reads nothing meanwhile
            # b reads what was queued (all 1-byte frames, not Raft frames), libzmq then drops the
            # connection; the same peer is heard again on a new one.
            with trio.fail_after(DEADLINE_S):
                while b.stats().dropped_decode < ROUTER_QUEUE_MESSAGES:
                    await trio.sleep(0.005)
                again = raw_dealer(port, b"a")
                again.sendall(frame(encode(Heartbeat(1, "a", "b", 0, 7))))
                (msg,) = await b.receive_batch(10)
                again.close()
            assert msg == Heartbeat(1, "a", "b", 0, 7), msg
            print(f"survived; {b.stats().dropped_decode} junk frames read and dropped")
            await b.aclose()

    trio.run(main)


if __name__ == "__main__":
    {"heartbeats": heartbeats, "transport": transport}[sys.argv[1]]()
