"""Relaying a request from a follower to the leader over HTTP, and relaying the answer back.

Only the leader serves requests (doq/service.py); a follower sends the request as it received it
(method, path and query as the client wrote them, body, content type) to the leader's HTTP
address over one shared keep-alive client (doq/api/relay.py), and answers with the leader's
status, body, content type and Retry-After unchanged.

What may be retried is decided by what is known about the request's fate:
- the request was not written (no connection, or none before the deadline): the leader never saw
  it, so the caller may try again (against a new leader, if one was elected meanwhile);
- the request was written and then the connection failed or the deadline passed: a read may be
  retried, a write may not (it may have been applied), so the client gets a 503 saying the
  outcome is unknown.
A hop header counts relays, so two nodes that each believe the other leads cannot bounce a request
between them forever.

The request to relay is a plain value (``RelayRequest``) built from the ASGI scope, so that both
the Quart routes and the fast path (doq/api/fastpath.py) relay the same way.
"""

from __future__ import annotations

import enum
import logging
import ssl
from typing import Any
from urllib.parse import quote

import attrs

from doq.api.errors import ApiProblem, unavailable
from doq.api.relay import ConnectFailed, ExchangeFailed, RelayClient

HOPS_HEADER = "X-Doq-Forwarded-Hops"
FORWARDED_HOST_HEADER = "X-Forwarded-Host"  # the host the client addressed (doq/api/links.py)
FORWARDED_BY_HEADER = "X-Doq-Forwarded-By"
HOPS_DIGITS_MAX = 3  # a hop count longer than this is not ours: counted as 0
_RELAYED_HEADERS = (
    (b"content-type", "Content-Type"),
    (b"retry-after", "Retry-After"),
    (b"x-doq-receipt", "X-Doq-Receipt"),  # doq/api/receipts.py: a dequeue's delivery receipt
    (b"x-doq-problem", "X-Doq-Problem"),  # doq/api/errors.py: the kind of a refusal, for clients
)
# The client's credentials travel with the request: the leader judges them itself
# (doq/api/auth.py), as it would judge the client's own request.
_SENT_HEADERS = (b"content-type", b"accept", b"authorization")
_HOPS_KEY = HOPS_HEADER.lower().encode()
_FORWARDED_HOST_KEY = FORWARDED_HOST_HEADER.lower().encode()

log = logging.getLogger("doq.api.forwarding")


class Retry(enum.Enum):
    """The request did not reach the leader; the caller may try again."""

    NOT_SENT = "not sent"
    READ_FAILED = "read failed"


@attrs.frozen
class RelayRequest:
    """A request as the client sent it: ``target`` is the path and query as written (still
    percent-encoded); ``headers`` are the ones relayed (lower-case names); ``client_host`` the
    host the client addressed (its X-Forwarded-Host when it is itself a relay)."""

    method: str
    target: bytes
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    client_host: bytes
    hops: int

    @classmethod
    def of_scope(cls, scope: dict[str, Any], body: bytes) -> RelayRequest:
        found: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            found.setdefault(name, value)  # the first of a name, as Quart's headers answer
        raw_path = scope.get("raw_path") or quote(scope.get("root_path", "") + scope["path"])
        target = raw_path if isinstance(raw_path, bytes) else raw_path.encode("ascii")
        if scope["query_string"]:
            target = target + b"?" + scope["query_string"]
        return cls(
            method=scope["method"],
            target=target,
            body=body,
            headers=tuple((name, found[name]) for name in _SENT_HEADERS if name in found),
            client_host=found.get(_FORWARDED_HOST_KEY, found.get(b"host", b"")),
            hops=hops_of(found.get(_HOPS_KEY)),
        )


def hops_of(raw: bytes | None) -> int:
    """The hop count a relaying node wrote; anything else counts as no hop."""
    if raw is None or not raw.isdigit() or len(raw) > HOPS_DIGITS_MAX:
        return 0
    return int(raw)


@attrs.frozen
class Relayed:
    """The leader's answer, reduced to what is relayed to the client."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...]  # Content-Type, Retry-After, X-Doq-Receipt if present


@attrs.define
class Forwarder:
    """Holds the shared client; ``start``/``aclose`` bracket the app's serving life."""

    node_id: str
    hops_max: int
    tls: ssl.SSLContext | None = None  # HTTPS to the leader, verified with this context
    _client: RelayClient | None = None

    def start(self) -> None:
        self._client = RelayClient(tls=self.tls)

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def forward(
        self, leader_http: str, relayed: RelayRequest, *, is_write: bool, deadline: float
    ) -> Relayed | Retry:
        """Relay ``relayed`` to ``leader_http`` ("host:port") before ``deadline`` (Trio time).
        Raises ``ApiProblem`` when the request is not to be relayed (too many hops) or when a
        write's fate is unknown."""
        if relayed.hops >= self.hops_max:
            raise unavailable(f"request relayed {relayed.hops} times without reaching the leader")
        if self._client is None:
            self.start()
        assert self._client is not None
        headers = [
            (b"host", leader_http.encode()),
            (b"content-length", str(len(relayed.body)).encode()),
            *relayed.headers,
            (_HOPS_KEY, str(relayed.hops + 1).encode()),
            (FORWARDED_BY_HEADER.lower().encode(), self.node_id.encode()),
            (_FORWARDED_HOST_KEY, relayed.client_host),
        ]
        method = relayed.method.encode()
        try:
            answer = await self._client.request(
                leader_http, method, relayed.target, headers, relayed.body, deadline=deadline
            )
        except ConnectFailed as exc:
            log.info("leader %s unreachable: %s", leader_http, exc)
            return Retry.NOT_SENT
        except ExchangeFailed as exc:
            if is_write:
                raise _outcome_unknown(leader_http, exc) from None
            return Retry.READ_FAILED
        kept = tuple(
            (name, value.decode("latin-1"))
            for key, name in _RELAYED_HEADERS
            if (value := answer.header(key)) is not None
        )
        return Relayed(answer.status, answer.body, kept)


def _outcome_unknown(leader_http: str, exc: Exception) -> ApiProblem:
    return unavailable(
        f"the request was sent to the leader at {leader_http} but its answer was lost "
        f"({exc}); it may or may not have been applied"
    )
