"""Relaying a request from a follower to the leader over HTTP, and relaying the answer back.

Only the leader serves requests (doq/service.py); a follower sends the request as it received it
(method, path, query, body, content type) to the leader's HTTP address with one shared keep-alive
client, and answers with the leader's status, body, content type and Retry-After unchanged.

What may be retried is decided by what is known about the request's fate:
- the connection could not be established: the leader never saw the request, so the caller may
  try again (against a new leader, if one was elected meanwhile);
- the request was sent and then the connection failed or timed out: a read may be retried, a
  write may not (it may have been applied), so the client gets a 503 saying the outcome is
  unknown.
A hop header counts relays, so two nodes that each believe the other leads cannot bounce a request
between them forever.
"""

from __future__ import annotations

import enum
import logging

import attrs
import httpx
import trio
from quart import Response, request

from doq.api.links import FORWARDED_HOST_HEADER
from doq.api.problems import ApiProblem, problem_response, unavailable

HOPS_HEADER = "X-Doq-Forwarded-Hops"
FORWARDED_BY_HEADER = "X-Doq-Forwarded-By"
# Below Hypercorn's 5 s keep-alive timeout, so the client drops an idle connection before the
# server does: a request written into a connection the server just closed has an unknown fate.
KEEPALIVE_EXPIRY_S = 2.0
CONNECTIONS_MAX = 64
_RELAYED_HEADERS = ("Content-Type", "Retry-After")
_SENT_HEADERS = ("Content-Type", "Accept")

log = logging.getLogger("doq.api.forwarding")


class Retry(enum.Enum):
    """The request did not reach the leader; the caller may try again."""

    NOT_SENT = "not sent"
    READ_FAILED = "read failed"


def hops_of_current_request() -> int:
    raw = request.headers.get(HOPS_HEADER, "0")
    return int(raw) if raw.isdigit() and len(raw) < 4 else 0


@attrs.define
class Forwarder:
    """Holds the shared client; ``start``/``aclose`` bracket the app's serving life."""

    node_id: str
    hops_max: int
    _client: httpx.AsyncClient | None = None

    def start(self) -> None:
        limits = httpx.Limits(
            max_connections=CONNECTIONS_MAX,
            max_keepalive_connections=CONNECTIONS_MAX,
            keepalive_expiry=KEEPALIVE_EXPIRY_S,
        )
        self._client = httpx.AsyncClient(limits=limits, trust_env=False)

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            with trio.CancelScope(shield=True):
                await client.aclose()

    async def forward(
        self, leader_http: str, body: bytes, *, is_write: bool, deadline: float
    ) -> Response | Retry:
        """Relay the current request, whose body is ``body``, to ``leader_http`` ("host:port")
        before ``deadline``."""
        hops = hops_of_current_request()
        if hops >= self.hops_max:
            raise unavailable(f"request relayed {hops} times without reaching the leader")
        if self._client is None:
            self.start()
        assert self._client is not None
        headers = {name: request.headers[name] for name in _SENT_HEADERS if name in request.headers}
        headers[HOPS_HEADER] = str(hops + 1)
        headers[FORWARDED_BY_HEADER] = self.node_id
        headers[FORWARDED_HOST_HEADER] = request.headers.get(
            FORWARDED_HOST_HEADER, request.headers.get("Host", "")
        )
        url = f"http://{leader_http}{request.root_path}{request.path}"
        if request.query_string:
            url = f"{url}?{request.query_string.decode('latin-1')}"
        remaining_s = max(deadline - trio.current_time(), 0.001)
        try:
            answer = await self._client.request(
                request.method,
                url,
                content=body,
                headers=headers,
                timeout=httpx.Timeout(remaining_s),
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            log.info("leader %s unreachable: %r", leader_http, exc)
            return Retry.NOT_SENT
        except httpx.TransportError as exc:
            if is_write:
                return problem_response(_outcome_unknown(leader_http, exc))
            return Retry.READ_FAILED
        relayed = {
            name: answer.headers[name] for name in _RELAYED_HEADERS if name in answer.headers
        }
        return Response(answer.content, status=answer.status_code, headers=relayed)


def _outcome_unknown(leader_http: str, exc: Exception) -> ApiProblem:
    return unavailable(
        f"the request was sent to the leader at {leader_http} but its answer was lost "
        f"({type(exc).__name__}); it may or may not have been applied"
    )
