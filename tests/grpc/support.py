"""Nodes serving gRPC in-process on 127.0.0.1, and a real generated client used from Trio.

The client is grpcio's synchronous stub (what a Go server user's Python client is), called in a
worker thread so the nodes' Trio loop keeps running meanwhile."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import attrs
import grpc
import httpx
import trio

from doq.config import Settings
from doq.grpc import doq_pb2_grpc as pb_grpc

from ..support import free_port

READY_S_MAX = 20
LOCAL_SUBCHANNELS = [("grpc.use_local_subchannel_pool", 1)]


def node_settings(root: str, node_id: str, **overrides: object) -> Settings:
    base = Settings(
        storage__data_dir=root,
        cluster__node_id=node_id,
        http__host="127.0.0.1",
        http__port=free_port(),
        raft__address=f"127.0.0.1:{free_port()}",
        raft__tick_ms=10,
        logging__level="warning",
        grpc__address=f"127.0.0.1:{free_port()}",
    )
    return attrs.evolve(base, **overrides)  # type: ignore[arg-type]


async def ready(settings: Settings) -> None:
    url = f"http://127.0.0.1:{settings.http__port}/readyz"
    async with httpx.AsyncClient() as client:
        with trio.fail_after(READY_S_MAX):
            while True:
                try:
                    if (await client.get(url)).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await trio.sleep(0.02)


@attrs.define
class Client:
    """A generated ``DOQ`` stub on its own channel; ``call`` runs one RPC in a thread."""

    address: str
    token: str = ""  # sent as 'authorization: Bearer <token>' metadata on every call
    channel: grpc.Channel = attrs.field(init=False)
    stub: pb_grpc.DOQStub = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        # A channel of its own connection: grpcio shares one between channels by default.
        self.channel = grpc.insecure_channel(self.address, options=LOCAL_SUBCHANNELS)
        self.stub = pb_grpc.DOQStub(self.channel)

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()

    async def call(self, method: str, request: Any, timeout_s: float = 20) -> Any:
        rpc = functools.partial(getattr(self.stub, method), timeout=timeout_s)
        if self.token:
            rpc = functools.partial(rpc, metadata=self.metadata)
        return await trio.to_thread.run_sync(rpc, request)

    async def error(self, method: str, request: Any) -> grpc.RpcError:
        try:
            await self.call(method, request)
        except grpc.RpcError as exc:
            return exc
        raise AssertionError(f"{method} succeeded")

    async def run(self, fn: Callable[[], Any]) -> Any:
        return await trio.to_thread.run_sync(fn)

    def close(self) -> None:
        self.channel.close()
