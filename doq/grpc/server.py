"""Serving the ``DOQ`` gRPC service for one node, for as long as the Trio task runs.

The node (doq/server.py) starts ``GrpcServer.run`` in its nursery after the HTTP API, with the same
ASGI application Hypercorn serves: every call is that application's answer (doq/grpc/rest.py).
``hooks`` is the one place for what runs before every call (authentication, TLS checks, per call
metrics): each is handed the grpclib server and subscribes to its events (``grpclib.events.listen``
with ``RecvRequest``, whose listener may refuse a call by raising ``GRPCError``).
"""

from __future__ import annotations

from collections.abc import Sequence

import trio

from doq.grpc.bridge import GrpcThread, ServerHook, TrioPortal
from doq.grpc.rest import Asgi, RestClient
from doq.grpc.servicer import DoqServicer


class GrpcServer:
    def __init__(
        self,
        address: str,
        app: Asgi,
        http_host: str,
        hooks: Sequence[ServerHook] = (),
    ) -> None:
        host, _, port = address.rpartition(":")
        self.host = host.strip("[]") or "0.0.0.0"
        self.port = int(port)
        self._rest = RestClient(app, http_host)
        self._hooks = tuple(hooks)

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; ``started`` with the port bound."""
        async with trio.open_nursery() as nursery:
            portal = TrioPortal(trio.lowlevel.current_trio_token(), nursery)
            servicer = DoqServicer(portal, self._rest)
            thread = GrpcThread(self.host, self.port, [servicer], self._hooks)
            await thread.start()
            try:
                task_status.started(thread.port)
                await trio.sleep_forever()
            finally:
                with trio.CancelScope(shield=True):
                    await thread.stop()
                nursery.cancel_scope.cancel()
