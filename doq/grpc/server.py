"""Serving the ``DOQ`` gRPC service for one node, for as long as the Trio task runs.

The node (doq/server.py) starts ``GrpcServer.run`` in its nursery after the HTTP API, with the same
ASGI application Hypercorn serves: every call is that application's answer (doq/grpc/rest.py).
``hooks`` is the one place for what runs before every call (authentication, TLS checks, per call
metrics): each is handed the grpclib server and subscribes to its events (``grpclib.events.listen``
with ``RecvRequest``, whose listener may refuse a call by raising ``GRPCError``).

Credentials need no hook: each call's ``authorization`` metadata rides on its REST request
(doq/grpc/rest.py) and is judged there. ``tls`` (``server_tls``: the node's HTTPS certificate and
key) makes the listener speak gRPC over TLS only, as Hypercorn does for HTTP (docs/grpc.md, "TLS").
"""

from __future__ import annotations

import ssl
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
        tls: ssl.SSLContext | None = None,
    ) -> None:
        host, _, port = address.rpartition(":")
        self.host = host.strip("[]") or "0.0.0.0"
        self.port = int(port)
        self._rest = RestClient(app, http_host)
        self._hooks = tuple(hooks)
        self._tls = tls

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; ``started`` with the port bound."""
        async with trio.open_nursery() as nursery:
            portal = TrioPortal(trio.lowlevel.current_trio_token(), nursery)
            servicer = DoqServicer(portal, self._rest)
            thread = GrpcThread(self.host, self.port, [servicer], self._hooks, self._tls)
            await thread.start()
            try:
                task_status.started(thread.port)
                await trio.sleep_forever()
            finally:
                with trio.CancelScope(shield=True):
                    await thread.stop()
                nursery.cancel_scope.cancel()


def server_tls(certfile: str, keyfile: str) -> ssl.SSLContext:
    """The listener's TLS context: TLS 1.2 or later, and ALPN ``h2``, which gRPC clients insist on
    (grpcio's refuses a server that does not select it)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile, keyfile)
    context.set_alpn_protocols(["h2"])
    return context
