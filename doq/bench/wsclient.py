"""A minimal WebSocket client on Trio streams and wsproto (Hypercorn's own WebSocket library, so
no dependency is added), for the stream benchmarks (doq/bench/stream.py): text frames only, one
task receiving and any number sending."""

from __future__ import annotations

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)

RECEIVE_CHUNK_BYTES = 64 * 1024


class WebSocketClosed(Exception):
    """The server closed the socket (or refused the upgrade)."""


class WsClient:
    def __init__(self, stream: trio.SocketStream) -> None:
        self._stream = stream
        self._ws = WSConnection(ConnectionType.CLIENT)
        self._texts: list[str] = []
        self._partial: list[str] = []
        self._send_lock = trio.Lock()

    @classmethod
    async def connect(cls, host: str, port: int, path: str) -> WsClient:
        client = cls(await trio.open_tcp_stream(host, port))
        await client._stream.send_all(client._ws.send(Request(host=f"{host}:{port}", target=path)))
        while True:
            for event in await client._events():
                if isinstance(event, AcceptConnection):
                    return client
                if isinstance(event, RejectConnection):
                    raise WebSocketClosed(f"upgrade refused: {event.status_code}")

    async def send(self, text: str) -> None:
        async with self._send_lock:
            await self._stream.send_all(self._ws.send(TextMessage(data=text)))

    async def receive(self) -> list[str]:
        """The next text frames (at least one)."""
        while not self._texts:
            for event in await self._events():
                if isinstance(event, TextMessage):
                    self._partial.append(event.data)
                    if event.message_finished:
                        self._texts.append("".join(self._partial))
                        self._partial.clear()
                elif isinstance(event, CloseConnection):
                    raise WebSocketClosed(f"closed by the server: {event.code} {event.reason}")
                elif isinstance(event, Ping):
                    async with self._send_lock:
                        await self._stream.send_all(self._ws.send(event.response()))
        texts, self._texts = self._texts, []
        return texts

    async def aclose(self) -> None:
        try:
            async with self._send_lock:
                await self._stream.send_all(self._ws.send(CloseConnection(code=1000)))
        except Exception:  # already closed: nothing to say
            pass
        await self._stream.aclose()

    async def _events(self) -> list[object]:
        data = await self._stream.receive_some(RECEIVE_CHUNK_BYTES)
        if not data:
            raise WebSocketClosed("connection closed")
        self._ws.receive_data(data)
        return list(self._ws.events())
