"""The Quart routes' side of the serve decision.

Every route that needs the leader is wrapped by ``Dispatcher.served``: the request gets its
deadline (``ApiSettings.request_timeout_s``, kept in the ASGI scope so that a request the fast
path hands over keeps the time it has left), its body is read before the route runs (a relay must
send it unchanged, and parsing a multipart form consumes it), and the route is run under the one
serve decision the fast path uses too (doq/api/serving.py): here on the leader, relayed to the
leader otherwise, waiting for a leader when none is known. Past the deadline the client gets a
503 problem with Retry-After, never a hang.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio
from quart import Response, request

from doq.api.forwarding import Forwarder, Relayed, RelayRequest
from doq.api.render import fails
from doq.api.serving import ServeDecision, request_deadline, unanswered_in_time
from doq.api.settings import ApiSettings
from doq.service import QueueService

Handler = Callable[..., Awaitable[Any]]


def relayed_response(relayed: Relayed) -> Response:
    return Response(relayed.body, status=relayed.status, headers=dict(relayed.headers))


@attrs.define
class Dispatcher:
    service: QueueService
    settings: ApiSettings
    forwarder: Forwarder
    decision: ServeDecision = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.decision = ServeDecision(self.service, self.settings, self.forwarder)

    def served(
        self, *, is_write: bool, hold_s: Callable[[], float] | None = None
    ) -> Callable[[Handler], Handler]:
        """Serve the route on the leader within the deadline. ``is_write``: the route changes
        state (dequeue is a write, though it is a GET), so a lost relay must not be re-sent.
        ``hold_s``: how long the request asks to be held (a long poll's wait), added to its
        deadline."""

        def decorator(handler: Handler) -> Handler:
            @functools.wraps(handler)
            async def serve(**kwargs: Any) -> Any:
                extra_s = hold_s() if hold_s is not None else 0.0
                return await self.serve(handler, kwargs, is_write=is_write, extra_s=extra_s)

            # Any write may meet a leader whose disk is short of room (doq/diskguard.py).
            return fails(507)(serve) if is_write else serve

        return decorator

    async def serve(
        self, handler: Handler, kwargs: dict[str, Any], *, is_write: bool, extra_s: float = 0.0
    ) -> Any:
        timeout_s = self.settings.request_timeout_s + extra_s
        scope = request.scope
        deadline = request_deadline(scope, timeout_s)
        with trio.move_on_at(deadline):
            body = await request.get_data()
            assert isinstance(body, bytes)
            outcome = await self.decision.serve(
                functools.partial(handler, **kwargs),
                functools.partial(RelayRequest.of_scope, scope, body),
                is_write=is_write,
                deadline=deadline,
            )
            return relayed_response(outcome) if isinstance(outcome, Relayed) else outcome
        raise unanswered_in_time(timeout_s, is_write=is_write)
