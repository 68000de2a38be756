"""A real one-node doq (Raft, LMDB state, the HTTP API on Hypercorn) served from a background
thread, so blocking clients and asyncio code in the test's own thread can talk to it over
127.0.0.1. Stopped by the fixture that started it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import trio

from doq.api import create_app

from ..api.support import api_settings, serve_app
from ..support import free_port, single_node_service

START_TIMEOUT_S = 30


class ThreadedNode:
    def __init__(self, data_dir: str, **settings: Any) -> None:
        self.data_dir = data_dir
        self.settings = settings
        self.http_address = f"127.0.0.1:{free_port()}"
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        self.service: Any = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.http_address}"

    def _main(self) -> None:
        try:
            trio.run(self._serve)
        except BaseException as exc:
            self.error = exc
            self.ready.set()

    async def _serve(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._stop = trio.Event()
        async with single_node_service(self.data_dir, http_address=self.http_address) as service:
            self.service = service
            app = create_app(service, api_settings("node-0", **self.settings))
            async with trio.open_nursery() as nursery:
                stop_http = trio.Event()
                await nursery.start(serve_app, app, self.http_address, stop_http)
                self.ready.set()
                await self._stop.wait()
                stop_http.set()

    def start(self) -> None:
        self._thread.start()
        if not self.ready.wait(START_TIMEOUT_S) or self.error is not None:
            raise RuntimeError(f"the node did not start: {self.error!r}")

    def stop(self) -> None:
        if self._token is not None and self._stop is not None:
            trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
        self._thread.join(START_TIMEOUT_S)


@contextmanager
def threaded_node(data_dir: str, **settings: Any) -> Iterator[ThreadedNode]:
    node = ThreadedNode(data_dir, **settings)
    node.start()
    try:
        yield node
    finally:
        node.stop()
