"""grpclib's asyncio gRPC server, run in a thread of its own, and the portal from it into Trio.

Why a bridge: doq runs on Trio, and the gRPC server chosen by measurement (docs/grpc.md, "Choosing
the server library"), grpclib, runs on asyncio only. So its asyncio loop runs in one thread, and
each call's work (a request to the node's own API, doq/grpc/rest.py) runs as a task in the
node's Trio nursery:

- ``TrioPortal.run`` schedules the Trio coroutine with the thread-safe ``TrioToken.run_sync_soon``
  and awaits an asyncio future it settles (no thread per call, no polling);
- a gRPC call cancelled by its client (or the server stopping) cancels the Trio task's scope,
  so a waiting dequeue stops waiting (and, cancelled while it waits, takes nothing);
- a Trio task cancelled from the Trio side (the node stopping) still settles its future, so no
  gRPC call waits for an answer that will not come.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import grpclib.server
import trio

T = TypeVar("T")

ServerHook = Callable[[grpclib.server.Server], None]  # e.g. grpclib.events.listen(server, ...)


class PortalClosed(Exception):
    """The Trio side is gone (the node stopped): the call cannot be served."""


class TrioPortal:
    """Runs Trio coroutines in ``nursery`` on behalf of asyncio code in another thread."""

    def __init__(self, token: trio.lowlevel.TrioToken, nursery: trio.Nursery) -> None:
        self._token = token
        self._nursery = nursery

    async def run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        scope = trio.CancelScope()
        try:
            self._token.run_sync_soon(self._start, fn, args, future, loop, scope)
        except trio.RunFinishedError:
            raise PortalClosed("the node is stopping") from None
        try:
            return await future
        except asyncio.CancelledError:
            with contextlib.suppress(trio.RunFinishedError):
                self._token.run_sync_soon(scope.cancel)
            raise

    def _start(self, fn: Any, args: Any, future: Any, loop: Any, scope: trio.CancelScope) -> None:
        try:
            self._nursery.start_soon(_settle, fn, args, future, loop, scope)
        except RuntimeError:  # the nursery is closed: the node is stopping
            _resolve(loop, future, None, PortalClosed("the node is stopping"))


async def _settle(
    fn: Callable[..., Awaitable[Any]],
    args: Sequence[Any],
    future: asyncio.Future[Any],
    loop: asyncio.AbstractEventLoop,
    scope: trio.CancelScope,
) -> None:
    result: Any = None
    error: BaseException | None = PortalClosed("the call was cancelled or the node is stopping")
    try:
        with scope:
            try:
                result, error = await fn(*args), None
            except Exception as exc:  # handed to the asyncio side, which answers the call
                error = exc
    finally:  # also when the node's nursery is cancelled: the call must not wait forever
        _resolve(loop, future, result, error)


def _resolve(
    loop: asyncio.AbstractEventLoop,
    future: asyncio.Future[Any],
    result: Any,
    error: BaseException | None,
) -> None:
    def settle() -> None:
        if future.done():  # cancelled by the client meanwhile
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits for the answer
        loop.call_soon_threadsafe(settle)


class GrpcThread:
    """One asyncio loop in a thread serving a grpclib server; ``start`` and ``stop`` from Trio."""

    def __init__(
        self,
        host: str,
        port: int,
        servables: Sequence[Any],
        hooks: Sequence[ServerHook] = (),
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.port = port  # the port bound once started (it may be given as 0)
        self._servables = tuple(servables)
        self._hooks = tuple(hooks)
        self._tls = tls  # None: plaintext HTTP/2
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: grpclib.server.Server | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="doq-grpc", daemon=True)

    async def start(self) -> None:
        self._thread.start()
        await trio.to_thread.run_sync(self._started.wait)
        if self._error is not None:
            raise self._error

    async def stop(self) -> None:
        loop, server = self._loop, self._server
        if loop is not None and server is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed already
                loop.call_soon_threadsafe(server.close)
        await trio.to_thread.run_sync(self._thread.join)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to start(); the thread ends here
            self._error = exc
            self._started.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        server = grpclib.server.Server(self._servables)
        # The one place for what runs before every call (authentication, TLS checks, metrics):
        # grpclib's server events (a RecvRequest listener may refuse a call with a GRPCError).
        for hook in self._hooks:
            hook(server)
        listener = _listener(self.host, self.port)
        self.port = listener.getsockname()[1]  # the port bound when 0 was asked for
        await server.start(sock=listener, ssl=self._tls)
        self._server = server
        self._started.set()
        await server.wait_closed()


def _listener(host: str, port: int) -> socket.socket:
    """A bound TCP socket for asyncio to listen on. Its protocol must say TCP: asyncio sets
    TCP_NODELAY only on connections of such a socket, and without it every answer waited for the
    client's delayed ACK (about 40 ms a call, measured by ``doq bench grpc-servers``)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock
