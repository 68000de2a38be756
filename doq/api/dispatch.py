"""Where and until when a request is served.

Every request that needs the leader runs under ``Dispatcher.served``: a deadline
(``ApiSettings.request_timeout_s``) past which the client gets a 503 problem with Retry-After,
never a hang; the route itself when this node leads; otherwise the request is relayed to the
leader (doq/api/forwarding.py). With no leader known the request waits for one inside its
deadline, and a relay that never reached the leader is tried again, against whichever node leads
by then.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio
from quart import request

from doq.api.forwarding import Forwarder, Retry
from doq.api.problems import problem_for_service_error, unavailable
from doq.api.settings import ApiSettings
from doq.service import NotLeaderError, QueueService, ServiceError

Handler = Callable[..., Awaitable[Any]]

LEADER_POLL_INTERVAL_S = 0.02  # how often a request waiting for a leader looks again
RETRY_PAUSE_S = 0.05  # after a relay that did not reach the leader, before trying again


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

            return serve

        return decorator

    async def serve(self, handler: Handler, kwargs: dict[str, Any], *, is_write: bool) -> Any:
        timeout_s = self.settings.request_timeout_s
        deadline = trio.current_time() + timeout_s
        with trio.move_on_at(deadline):
            # Read the body before the route does: parsing a multipart form consumes it, and a
            # relay to the leader must send it unchanged.
            body = await request.get_data()
            assert isinstance(body, bytes)
            return await self._serve_until(
                handler, kwargs, body, is_write=is_write, deadline=deadline
            )
        if is_write:
            raise unavailable(
                f"no answer within {timeout_s:g} s; the request may or may not have been applied"
            )
        raise unavailable(f"no answer within {timeout_s:g} s (no leader reachable in time)")

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
                leader_http, body, is_write=is_write, deadline=deadline
            )
            if not isinstance(outcome, Retry):
                return outcome
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
