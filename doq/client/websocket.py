"""A small WebSocket client on anyio streams and wsproto, for the streaming consumer
(doq/client/stream.py): text frames only, under Trio and asyncio alike.

Why not a WebSocket library with its own I/O: the consumer must run wherever ``AsyncClient``
runs (anyio), and wsproto is the sans-I/O protocol Hypercorn already serves the stream with, so
it adds no package; the I/O around it is these few lines. One task may receive while others
send (the send lock keeps frames whole); a ping is answered by whoever receives it.
"""

from __future__ import annotations

import contextlib
import ssl
from typing import Any
from urllib.parse import urlsplit

import anyio
import anyio.abc
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError

RECEIVE_CHUNK_BYTES = 64 * 1024


class WebSocketClosed(Exception):
    """The connection is over: closed by the server (``code``) or lost (``code`` None)."""

    def __init__(self, detail: str, code: int | None = None) -> None:
        super().__init__(detail)
        self.code = code


class UpgradeRefused(Exception):
    """The server answered the upgrade with an HTTP status: it has no stream at that path."""

    def __init__(self, status: int) -> None:
        super().__init__(f"the WebSocket upgrade was refused with HTTP {status}")
        self.status = status


def ws_url(http_url: str, path: str) -> str:
    """The WebSocket URL of ``path`` on the node at ``http_url`` (http -> ws, https -> wss)."""
    scheme, _, rest = http_url.partition("://")
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest}{path}"


class WebSocket:
    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self._stream = stream
        self._ws = WSConnection(ConnectionType.CLIENT)
        self._texts: list[str] = []
        self._partial: list[str] = []
        self._send_lock = anyio.Lock()
        self._close: CloseConnection | None = None  # the server's close, once it came

    @classmethod
    async def connect(cls, url: str, *, timeout_s: float) -> WebSocket:
        """Opens ``url`` (ws:// or wss://); raises ``UpgradeRefused``, ``WebSocketClosed`` or
        ``OSError``."""
        parts = urlsplit(url)
        tls = parts.scheme == "wss"
        port = parts.port or (443 if tls else 80)
        host = parts.hostname or "127.0.0.1"
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        with anyio.fail_after(timeout_s):
            stream = await anyio.connect_tcp(
                host, port, tls=tls, ssl_context=ssl.create_default_context() if tls else None
            )
            socket = cls(stream)
            try:
                await socket._handshake(f"{host}:{port}", target)
            except BaseException:
                await anyio.aclose_forcefully(stream)
                raise
        return socket

    async def _handshake(self, host: str, target: str) -> None:
        await self._stream.send(self._ws.send(Request(host=host, target=target)))
        while True:
            for event in await self._events():
                if isinstance(event, AcceptConnection):
                    return
                if isinstance(event, RejectConnection):
                    raise UpgradeRefused(event.status_code)

    async def send(self, text: str) -> None:
        await self._send_event(TextMessage(data=text))

    async def _send_event(self, event: TextMessage | Ping | CloseConnection | Any) -> None:
        try:
            async with self._send_lock:
                await self._stream.send(self._ws.send(event))
        except LocalProtocolError as exc:  # the server's close came in: nothing more may go
            raise WebSocketClosed(f"closing: {exc}") from exc
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            raise WebSocketClosed(f"connection lost: {exc!r}") from exc

    async def receive(self) -> list[str]:
        """The next text frames (at least one); raises ``WebSocketClosed`` at the end."""
        while not self._texts:
            if self._close is not None:  # after the frames that came before it
                raise WebSocketClosed(
                    f"closed: {self._close.code} {self._close.reason}", self._close.code
                )
            for event in await self._events():
                if isinstance(event, TextMessage):
                    self._partial.append(event.data)
                    if event.message_finished:
                        self._texts.append("".join(self._partial))
                        self._partial.clear()
                elif isinstance(event, CloseConnection):
                    self._close = event
                elif isinstance(event, Ping):
                    await self._send_event(event.response())
        texts, self._texts = self._texts, []
        return texts

    async def aclose(self) -> None:
        with contextlib.suppress(WebSocketClosed):  # closed already: nothing to say
            await self._send_event(CloseConnection(code=1000))
        await anyio.aclose_forcefully(self._stream)

    async def _events(self) -> list[object]:
        try:
            data = await self._stream.receive(RECEIVE_CHUNK_BYTES)
        except (
            anyio.EndOfStream,
            anyio.BrokenResourceError,
            anyio.ClosedResourceError,
            OSError,
        ) as exc:
            raise WebSocketClosed(f"connection lost: {exc!r}") from exc
        self._ws.receive_data(data)
        return list(self._ws.events())
