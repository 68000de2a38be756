"""A small keep-alive HTTP/1.1 client on Trio streams, for relaying requests to the leader.

Why not httpx: it cost 750-930 us of CPU per request here, more than the leader spent serving
the request, so a follower that relays every request was the slowest node of the cluster. A relay
needs little: one request with a body, one whole answer, connections kept alive per address.
The protocol is h11's (the parser Hypercorn uses): framing (Content-Length and chunked),
keep-alive and "Connection: close" are its job, not this module's. With a TLS context it speaks
HTTPS to every address, verifying the peer's certificate with that context (its CA file).

What the caller must learn from a failure is whether the server may have seen the request:
- ``ConnectFailed``: nothing was written (no connection, no free slot before the deadline), so
  the request may be sent again, here or elsewhere;
- ``ExchangeFailed``: the request was written, at least in part, and then the connection failed,
  the answer was malformed, or the deadline passed; the server may have acted on it.
A pooled connection that the server closed while it was idle is noticed before it is used (it
reads as ready: end of file), so a request is not written into a connection already known dead.
"""

from __future__ import annotations

import select
import ssl
import time
from collections.abc import Callable, Sequence

import attrs
import h11
import trio

RECEIVE_CHUNK_BYTES = 64 * 1024
ANSWER_HEAD_BYTES_MAX = 64 * 1024  # status line and headers of one answer
ANSWER_BODY_BYTES_MAX = 1 << 30  # a backup is relayed whole; beyond this the peer is broken
# Below the server's keep-alive timeout (Hypercorn's default is 5 s): the client drops an idle
# connection before the server does, so a request is rarely written into one being closed.
IDLE_EXPIRY_S = 2.0
CONNECTIONS_PER_ADDRESS_MAX = 64  # requests relayed to one address at once; more wait

Header = tuple[bytes, bytes]
# What a connection that fails mid-exchange raises: the socket's errors, Trio's for a stream
# closed under it, h11's for an answer that is not HTTP/1.1 (or ends too early).
_EXCHANGE_ERRORS = (OSError, trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError)


class ConnectFailed(Exception):
    """The request was not written: it may be sent again."""


class ExchangeFailed(Exception):
    """The request was written (perhaps in part) and no whole answer came back."""


@attrs.frozen
class HttpAnswer:
    status: int
    headers: tuple[Header, ...]  # names in lower case, as received otherwise
    body: bytes

    def header(self, name: bytes) -> bytes | None:
        """The first value of header ``name`` (lower case)."""
        return next((value for key, value in self.headers if key == name), None)


class _Connection:
    """One TCP connection and its h11 state; one exchange at a time."""

    def __init__(
        self, stream: trio.abc.Stream, tcp: trio.SocketStream, body_bytes_max: int
    ) -> None:
        self.stream = stream  # the TCP stream itself, or TLS over it
        self.tcp = tcp
        self.body_bytes_max = body_bytes_max
        self.protocol = h11.Connection(h11.CLIENT, max_incomplete_event_size=ANSWER_HEAD_BYTES_MAX)
        self.idle_since_s = 0.0

    def usable_after_idle(self, now_s: float, idle_expiry_s: float) -> bool:
        """Not idle too long, and nothing to read: a connection the server closed (or that
        holds bytes nobody asked for) reads as ready."""
        if now_s - self.idle_since_s > idle_expiry_s:
            return False
        poller = select.poll()  # not select.select: it fails for descriptors above 1023
        poller.register(self.tcp.socket.fileno(), select.POLLIN)
        return not poller.poll(0)

    def close(self) -> None:
        self.tcp.socket.close()  # synchronous in Trio (it notifies waiters first)

    async def exchange(
        self, method: bytes, target: bytes, headers: Sequence[Header], body: bytes
    ) -> HttpAnswer:
        protocol = self.protocol
        data = protocol.send(h11.Request(method=method, target=target, headers=headers))
        assert data is not None
        if body:
            data += protocol.send(h11.Data(data=body)) or b""
        data += protocol.send(h11.EndOfMessage()) or b""
        await self.stream.send_all(data)
        return await self._answer()

    async def _answer(self) -> HttpAnswer:
        protocol = self.protocol
        status = 0
        headers: tuple[Header, ...] = ()
        chunks: list[bytes] = []
        body_bytes = 0
        while True:
            event = protocol.next_event()
            if event is h11.NEED_DATA:
                protocol.receive_data(await self.stream.receive_some(RECEIVE_CHUNK_BYTES))
            elif isinstance(event, h11.Response):
                status, headers = event.status_code, tuple(event.headers)
            elif isinstance(event, h11.Data):
                body_bytes += len(event.data)
                if body_bytes > self.body_bytes_max:
                    raise ExchangeFailed(f"answer body larger than {self.body_bytes_max} bytes")
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                assert status, "h11 ends a message only after its head"
                return HttpAnswer(status, headers, b"".join(chunks))
            elif not isinstance(event, h11.InformationalResponse):  # 100 Continue is skipped
                raise ExchangeFailed(f"connection ended before the answer did ({event!r})")

    def reusable(self) -> bool:
        """After a whole exchange: both sides done and neither asked to close."""
        protocol = self.protocol
        if protocol.our_state is h11.DONE and protocol.their_state is h11.DONE:
            protocol.start_next_cycle()
            return True
        return False


@attrs.define
class _Pool:
    """The connections to one address: idle ones (most recent last) and the slots in use."""

    slots: trio.Semaphore
    idle: list[_Connection] = attrs.field(factory=list)


class RelayClient:
    """Keep-alive HTTP/1.1 to any number of ``host:port`` addresses. ``aclose`` closes the idle
    connections; requests in flight close theirs when they end."""

    def __init__(
        self,
        *,
        idle_expiry_s: float = IDLE_EXPIRY_S,
        connections_per_address_max: int = CONNECTIONS_PER_ADDRESS_MAX,
        answer_body_bytes_max: int = ANSWER_BODY_BYTES_MAX,
        clock_s: Callable[[], float] = time.monotonic,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        assert idle_expiry_s > 0 and connections_per_address_max > 0 and answer_body_bytes_max > 0
        self._idle_expiry_s = idle_expiry_s
        self._answer_body_bytes_max = answer_body_bytes_max
        self._connections_max = connections_per_address_max
        self._clock_s = clock_s
        self._tls = tls  # HTTPS to every address, verified with this context
        self._pools: dict[str, _Pool] = {}
        self._closed = False

    async def request(
        self,
        address: str,
        method: bytes,
        target: bytes,
        headers: Sequence[Header],
        body: bytes,
        *,
        deadline: float,
    ) -> HttpAnswer:
        """Send one request to ``address`` ("host:port") and read its whole answer before
        ``deadline`` (Trio time). ``headers`` must frame the body (Content-Length)."""
        if self._closed:
            raise ConnectFailed("the relay client is closed")
        pool = self._pool(address)
        written = False
        with trio.move_on_at(deadline):
            async with pool.slots:
                connection = self._idle_connection(pool) or await self._connect(address)
                written = True  # from here on, the server may see the request
                try:
                    answer = await connection.exchange(method, target, headers, body)
                except _EXCHANGE_ERRORS as exc:
                    connection.close()
                    raise ExchangeFailed(f"{type(exc).__name__}: {exc}") from exc
                except BaseException:  # the deadline, or an answer too large: not reusable
                    connection.close()
                    raise
                self._give_back(pool, connection)
                return answer
        if written:
            raise ExchangeFailed("no answer before the deadline")
        raise ConnectFailed("the deadline passed before the request could be sent")

    async def aclose(self) -> None:
        self._closed = True
        for pool in self._pools.values():
            for connection in pool.idle:
                connection.close()
            pool.idle.clear()
        await trio.lowlevel.checkpoint()

    def idle_connections(self, address: str) -> int:
        pool = self._pools.get(address)
        return len(pool.idle) if pool is not None else 0

    def _pool(self, address: str) -> _Pool:
        pool = self._pools.get(address)
        if pool is None:
            pool = self._pools[address] = _Pool(trio.Semaphore(self._connections_max))
        return pool

    def _idle_connection(self, pool: _Pool) -> _Connection | None:
        now_s = self._clock_s()
        while pool.idle:
            connection = pool.idle.pop()
            if connection.usable_after_idle(now_s, self._idle_expiry_s):
                return connection
            connection.close()
        return None

    async def _connect(self, address: str) -> _Connection:
        host, _, port = address.rpartition(":")
        if not host or not port.isascii() or not port.isdigit():
            raise ConnectFailed(f"not a host:port address: {address!r}")
        try:
            tcp = await trio.open_tcp_stream(host.strip("[]"), int(port))
        except OSError as exc:
            raise ConnectFailed(f"cannot connect to {address}: {exc}") from exc
        if self._tls is None:
            return _Connection(tcp, tcp, self._answer_body_bytes_max)
        tls = trio.SSLStream(tcp, self._tls, server_hostname=host.strip("[]"))
        try:
            await tls.do_handshake()
        except (trio.BrokenResourceError, OSError) as exc:  # nothing of the request was sent
            tcp.socket.close()
            raise ConnectFailed(f"TLS handshake with {address} failed: {exc}") from exc
        return _Connection(tls, tcp, self._answer_body_bytes_max)

    def _give_back(self, pool: _Pool, connection: _Connection) -> None:
        if self._closed or not connection.reusable():
            connection.close()
            return
        now_s = connection.idle_since_s = self._clock_s()
        # The oldest first: connections no request took for a while are closed, not kept.
        while pool.idle and now_s - pool.idle[0].idle_since_s > self._idle_expiry_s:
            pool.idle.pop(0).close()
        pool.idle.append(connection)
