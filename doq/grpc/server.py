"""Serving the ``DOQ`` gRPC service for one node, for as long as the Trio task runs.

The node (doq/server.py) starts ``GrpcServer.run`` in its nursery after the HTTP API, with the same
ASGI application Hypercorn serves: every call is that application's answer (doq/grpc/rest.py).
``interceptors`` is the one place where gRPC interceptors go (authentication, TLS checks, per call
metrics): grpc.aio's own hook, applied to every call.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc
import trio

from doq.grpc import doq_pb2_grpc as pb_grpc
from doq.grpc.bridge import GrpcThread, TrioPortal
from doq.grpc.rest import Asgi, RestClient
from doq.grpc.servicer import DoqServicer


class GrpcServer:
    def __init__(
        self,
        address: str,
        app: Asgi,
        http_host: str,
        interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    ) -> None:
        self.address = address
        self._rest = RestClient(app, http_host)
        self._interceptors = tuple(interceptors)

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; ``started`` with the port bound."""
        async with trio.open_nursery() as nursery:
            portal = TrioPortal(trio.lowlevel.current_trio_token(), nursery)
            servicer = DoqServicer(portal, self._rest)
            thread = GrpcThread(
                self.address,
                lambda server: pb_grpc.add_DOQServicer_to_server(servicer, server),
                self._interceptors,
            )
            await thread.start()
            try:
                assert thread.port is not None
                task_status.started(thread.port)
                await trio.sleep_forever()
            finally:
                with trio.CancelScope(shield=True):
                    await thread.stop()
                nursery.cancel_scope.cancel()
