"""Where and until when a request is served.

Every request that needs the leader runs under ``Dispatcher.served``: a deadline
(``ApiSettings.request_timeout_s``) past which the client gets a 503 problem with Retry-After,
never a hang; the route itself when this node leads; otherwise the request is relayed to the
leader (doq/api/forwarding.py). With no leader known the request waits for one inside its
deadline, and a relay that never reached the leader is tried again, against whichever node leads
by then.

The deadline is the request's, set once when it arrives and kept in its ASGI scope: a request
that the fast path (doq/api/fastpath.py) hands over to the routes keeps the time it has left.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio
from quart import Response, request

from doq.api.forwarding import Forwarder, Relayed, RelayRequest, Retry
from doq.api.problems import ApiProblem, problem_for_service_error, unavailable
from doq.api.render import fails
from doq.api.settings import ApiSettings
from doq.service import NotLeaderError, QueueService, ServiceError

Handler = Callable[..., Awaitable[Any]]

LEADER_POLL_INTERVAL_S = 0.02  # how often a request waiting for a leader looks again
RETRY_PAUSE_S = 0.05  # after a relay that did not reach the leader, before trying again
DEADLINE_SCOPE_KEY = "doq.deadline"  # the request's deadline (Trio time) in its ASGI scope


def request_deadline(scope: dict[str, Any], timeout_s: float) -> float:
    """The request's deadline: set by whoever sees the request first, then kept."""
    deadline = scope.get(DEADLINE_SCOPE_KEY)
    if deadline is None:
        deadline = scope[DEADLINE_SCOPE_KEY] = trio.current_time() + timeout_s
    return deadline


def unanswered_in_time(timeout_s: float, *, is_write: bool) -> ApiProblem:
    """The problem for a request whose deadline passed."""
    if is_write:
        return unavailable(
            f"no answer within {timeout_s:g} s; the request may or may not have been applied"
        )
    return unavailable(f"no answer within {timeout_s:g} s (no leader reachable in time)")


def relayed_response(relayed: Relayed) -> Response:
    return Response(relayed.body, status=relayed.status, headers=dict(relayed.headers))


@attrs.define
class Dispatcher:
    service: QueueService
    settings: ApiSettings
    forwarder: Forwarder

    def served(self, *, is_write: bool) -> Callable[[Handler], Handler]:
        """Serve the route on the leader within the deadline. ``is_write``: the route changes
        state (dequeue is a write, though it is a GET), so a lost relay must not be re-sent."""

        def decorator(handler: Handler) -> Handler:
            @functools.wraps(handler)
            async def serve(**kwargs: Any) -> Any:
                return await self.serve(handler, kwargs, is_write=is_write)

            # Any write may meet a leader whose disk is short of room (doq/diskguard.py).
            return fails(507)(serve) if is_write else serve

        return decorator

    async def serve(self, handler: Handler, kwargs: dict[str, Any], *, is_write: bool) -> Any:
        timeout_s = self.settings.request_timeout_s
        deadline = request_deadline(request.scope, timeout_s)
        with trio.move_on_at(deadline):
            # Read the body before the route does: parsing a multipart form consumes it, and a
            # relay to the leader must send it unchanged.
            body = await request.get_data()
            assert isinstance(body, bytes)
            return await self._serve_until(
                handler, kwargs, body, is_write=is_write, deadline=deadline
            )
        raise unanswered_in_time(timeout_s, is_write=is_write)

    async def _serve_until(
        self,
        handler: Handler,
        kwargs: dict[str, Any],
        body: bytes,
        *,
        is_write: bool,
        deadline: float,
    ) -> Any:
        while True:
            try:
                return await handler(**kwargs)
            except NotLeaderError as exc:
                if not self.settings.forwarding:
                    raise problem_for_service_error(exc) from None
                leader_http = exc.leader_http
            except ServiceError as exc:
                raise problem_for_service_error(exc) from None
            if leader_http is None:
                await self._wait_for_leader()
                continue
            outcome = await self.forwarder.forward(
                leader_http,
                RelayRequest.of_scope(request.scope, body),
                is_write=is_write,
                deadline=deadline,
            )
            if not isinstance(outcome, Retry):
                return relayed_response(outcome)
            await trio.sleep(RETRY_PAUSE_S)

    async def _wait_for_leader(self) -> None:
        """Until this node leads or knows a leader with an HTTP address (cancelled by the
        request's deadline)."""
        while True:
            if self.service.raft.is_leader:
                return
            leader = self.service.leader()
            if leader is not None and leader.http_address:
                return
            await trio.sleep(LEADER_POLL_INTERVAL_S)
