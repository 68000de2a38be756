"""The gRPC thread's listening socket: asyncio turns Nagle off only on connections of a socket
whose protocol says TCP; without it each answer waited for the client's delayed ACK (~40 ms)."""

from __future__ import annotations

import socket

from doq.grpc.bridge import _listener


def test_the_listener_is_a_tcp_socket_so_answers_are_sent_at_once():
    sock = _listener("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.getsockname()[1] > 0
    finally:
        sock.close()
