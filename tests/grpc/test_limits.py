"""The in-flight caps over gRPC (doq/api/limits.py): a call's REST request names the call's
connection as its client (doq/grpc/rest.py, ``Caller``), so the per-connection cap counts each
gRPC connection apart, as it counts each HTTP connection, and not every gRPC call of every
client as one connection."""

from __future__ import annotations

import grpc
import trio

from doq.grpc import doq_pb2 as pb
from doq.server import DoqNode

from ..support import free_port
from .support import Client, node_settings

WAIT_S_MAX = 10
HELD_S = 5  # how long a call waits for a leader that never comes: the request is held so long


async def test_the_per_connection_cap_counts_each_grpc_connection_apart(tmp_path):
    # A node that never learns a leader holds each call until its deadline: a request in flight.
    settings = node_settings(
        str(tmp_path),
        "lonely",
        cluster__join_addr=f"127.0.0.1:{free_port()}",
        http__request_timeout=HELD_S,
        http__requests_per_connection_max=1,
    )
    node = DoqNode(settings)
    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        first, second = Client(settings.grpc__address), Client(settings.grpc__address)
        held: list[grpc.RpcError] = []

        async def hold() -> None:
            held.append(await first.error("GetQueues", pb.GetQueuesRequest()))

        try:
            async with trio.open_nursery() as calls:
                calls.start_soon(hold)
                with trio.fail_after(WAIT_S_MAX):
                    while node.requests_in_flight == 0:
                        await trio.sleep(0.01)
                full = await first.error("GetQueues", pb.GetQueuesRequest())
                assert full.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert "this connection" in full.details()
                # Another connection has a slot of its own: it waits for a leader too.
                waited = await second.error("GetQueues", pb.GetQueuesRequest())
                assert waited.code() == grpc.StatusCode.UNAVAILABLE, waited.details()
            assert held[0].code() == grpc.StatusCode.UNAVAILABLE
        finally:
            first.close()
            second.close()
            node.stop()
