"""``create_app``: the Quart-Trio application of one node, ready for Hypercorn.

It wires the service into the routes, installs the problem+json error handlers, the OpenAPI
document and docs page (quart-schema), the body limit, per-request metrics, the follower-to-leader
forwarder, the rate sampler, and the fast path for enqueue and dequeue (doq/api/fastpath.py) in
front of it all; in front of the fast path, the in-flight caps (doq/api/limits.py) and, when
tokens are configured, the bearer-token check (doq/api/auth.py), so no way in bypasses them.
The two background pieces (the forwarder's HTTP client and the sampler task) live between the
app's startup and shutdown, in the nursery Quart-Trio gives the app, so they end with it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

import trio
from quart import Request, Response
from quart_schema import Info, QuartSchema, Tag
from quart_trio import QuartTrio
from werkzeug.wrappers import Response as WerkzeugResponse

from doq.api.auth import BearerAuth
from doq.api.context import ApiContext
from doq.api.dispatch import Dispatcher
from doq.api.fastpath import FastPath
from doq.api.forwarding import Forwarder
from doq.api.limits import InFlightLimits
from doq.api.openapi import DoqOpenAPIProvider
from doq.api.problems import install_error_handlers
from doq.api.routes_admin import register_admin_routes
from doq.api.routes_batch import register_batch_routes
from doq.api.routes_cluster import register_cluster_routes
from doq.api.routes_docs import register_docs_routes
from doq.api.routes_messages import register_in_flight_routes, register_message_routes
from doq.api.routes_ops import register_ops_routes
from doq.api.routes_queues import register_queue_routes
from doq.api.routes_stream import register_stream_routes
from doq.api.routes_ui import register_ui_routes
from doq.api.serving import RequestMetrics
from doq.api.settings import ApiSettings
from doq.commands import Command
from doq.longpoll import ReadyWaits, watch_leadership
from doq.metrics import Metrics
from doq.rates import SAMPLE_INTERVAL_S, RateTracker
from doq.service import QueueService
from doq.state.results import Result
from raft_zmq.node import NodeStopped

UNMATCHED_ROUTE = "<unmatched>"  # the route label of requests no rule matched (404s)
TAGS = (
    Tag(name="Queues", description="Create, configure, list and delete queues"),
    Tag(name="Messages", description="Enqueue, dequeue, acknowledge and manage messages"),
    Tag(name="Cluster", description="Membership of the Raft cluster"),
    Tag(name="Operations", description="Backup, restore, health"),
)

log = logging.getLogger("doq.api")


class DoqApp(QuartTrio):
    """QuartTrio that times every request for /metrics, labelled by its route template."""

    doq: ApiContext

    async def handle_request(self, request: Request) -> Response | WerkzeugResponse:
        started_s = time.perf_counter()
        response = await super().handle_request(request)
        rule = request.url_rule.rule if request.url_rule is not None else UNMATCHED_ROUTE
        self.doq.requests.record(
            request.method, rule, response.status_code, time.perf_counter() - started_s
        )
        return response


def create_app(service: QueueService, settings: ApiSettings) -> QuartTrio:
    app = DoqApp("doq")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    QuartSchema(
        app,
        openapi_path="/openapi.json",
        swagger_ui_path=None,  # /docs is doq/api/routes_docs.py's, with no CDN
        redoc_ui_path=None,
        scalar_ui_path=None,
        info=Info(title=settings.title, version=settings.version),
        tags=list(TAGS),
        conversion_preference="msgspec",
        openapi_provider_class=DoqOpenAPIProvider,
    )
    # quart-schema wraps make_response to turn returned models into JSON (about 25 us a
    # request); every route here returns a Response already, so the plain method is restored.
    app.make_response = QuartTrio.make_response.__get__(app)  # type: ignore[method-assign]
    forwarder = Forwarder(settings.node_id, settings.forward_hops_max, settings.peer_tls)
    metrics = Metrics.create(service)
    api = ApiContext(
        service=service,
        settings=settings,
        rates=RateTracker(settings.stats_window_s, time.monotonic),
        dispatcher=Dispatcher(service, settings, forwarder),
        metrics=metrics,
        requests=RequestMetrics(metrics),
        waits=ReadyWaits(),
    )
    _wake_waiters_on_commit(service, api.waits)
    app.doq = api
    install_error_handlers(app)
    register_queue_routes(app, api)
    register_message_routes(app, api)
    register_in_flight_routes(app, api)
    register_batch_routes(app, api)
    register_stream_routes(app, api)
    register_cluster_routes(app, api)
    register_ops_routes(app, api)
    register_docs_routes(app, settings.title)
    register_admin_routes(app, api)
    register_ui_routes(app)
    if settings.fast_path:
        # Quart's own middleware hook: Hypercorn and the test client both call asgi_app.
        app.asgi_app = FastPath(app.asgi_app, api)  # type: ignore[method-assign]
    # In front of everything, the fast path included: the in-flight caps, then the tokens.
    if settings.tokens is not None:
        app.asgi_app = BearerAuth(app.asgi_app, settings.tokens)  # type: ignore[method-assign]
    app.asgi_app = InFlightLimits(app.asgi_app, settings.caps)  # type: ignore[method-assign]

    # Quart-Trio waits up to BACKGROUND_TASK_SHUTDOWN_TIMEOUT for tasks in its nursery at
    # shutdown: the sampler and the leadership watcher are cancelled explicitly so shutdown does
    # not wait for them.
    sampler_scope = trio.CancelScope()
    watcher_scope = trio.CancelScope()

    @app.before_serving
    async def start_background() -> None:
        forwarder.start()
        app.nursery.start_soon(_sample_rates, api, sampler_scope)
        role_changed = getattr(service.raft, "wait_role_change", None)  # None: a test double
        if role_changed is not None:
            app.nursery.start_soon(_watch_leadership, role_changed, api.waits, watcher_scope)

    @app.after_serving
    async def stop_background() -> None:
        sampler_scope.cancel()
        watcher_scope.cancel()
        await forwarder.aclose()

    return app


def _wake_waiters_on_commit(service: QueueService, waits: ReadyWaits) -> None:
    """Waiting dequeues (doq/longpoll.py) wake on the writes this leader commits."""
    listeners = getattr(service, "on_commit", None)  # None: a test double without it
    if listeners is None:
        return

    def on_commit(command: Command, result: Result) -> None:
        waits.committed(command, result, service.state.queue_info)

    listeners.append(on_commit)


async def _watch_leadership(
    role_changed: Callable[[], Awaitable[None]], waits: ReadyWaits, scope: trio.CancelScope
) -> None:
    with scope:
        try:
            await watch_leadership(role_changed, waits)
        except NodeStopped:
            waits.wake_all()


async def _sample_rates(api: ApiContext, scope: trio.CancelScope) -> None:
    """Feed the rate tracker from the local replica about once a second."""
    with scope:
        while True:
            try:
                api.rates.observe(api.service.state.list_queues())
            except Exception:  # the state closing under us at shutdown; the next tick retries
                log.debug("rate sampling skipped", exc_info=True)
            await trio.sleep(SAMPLE_INTERVAL_S)
