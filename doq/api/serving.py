"""One serve decision: where, and until when, a request is served, for every door into doq.

The Quart routes (doq/api/dispatch.py), the fast path (doq/api/fastpath.py), and later a gRPC
front all call ``ServeDecision.serve``, and the WebSocket streams (doq/api/routes_stream.py) call
``ServeDecision.stream_home``, so a change to the forwarding policy is made here once.
The decision, for a call that needs the leader:

- the call runs here when this node leads (the service raises ``NotLeaderError`` otherwise);
- on a follower the request is relayed to the leader the service named (doq/api/forwarding.py),
  unless forwarding is off, when the answer is a 503 naming the leader;
- with no leader known the request waits for one (this node, or a leader with an HTTP address);
- a relay that never reached the leader is tried again, after a short pause, against whichever
  node leads by then;
- all of it within the request's deadline, set once when the request arrives and kept in its
  ASGI scope (``request_deadline``), past which the caller answers ``unanswered_in_time``.

What else each front needs to agree on is here too: how ``?ack=`` and the other boolean query
values read, which path is the messages collection of a queue, and the per-request metrics.

Framework-free: no Quart, Werkzeug or Hypercorn (an import-linter contract keeps it so), only Trio
for time; the callers turn the outcome (the call's value, a relayed answer, or an ``ApiProblem``)
into their own kind of response.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import attrs
import trio

from doq.api.errors import ApiProblem, problem_for_service_error, unavailable, validation_problem
from doq.api.forwarding import Forwarder, Relayed, RelayRequest, Retry
from doq.api.settings import ApiSettings
from doq.commands import DEQUEUE_COUNT_MAX, QUEUE_NAME_CHARS_MAX
from doq.longpoll import WAIT_S_MAX
from doq.metrics import Metrics
from doq.service import NotLeaderError, QueueService, ServiceError

T = TypeVar("T")

LEADER_POLL_INTERVAL_S = 0.02  # how often a request waiting for a leader looks again
RETRY_PAUSE_S = 0.05  # after a relay that did not reach the leader, before trying again
# After this node learns of a new leader, how long a relay to the old one may still answer
# before it is given up (docs/reliability.md, finding 3).
RELAY_GRACE_S = 1.0
DEADLINE_SCOPE_KEY = "doq.deadline"  # the request's deadline (Trio time) in its ASGI scope

QUEUES_PREFIX = "/API/v1/queues/"
MESSAGES_SUFFIX = "/messages"

# strconv.ParseBool's spellings, which the Go server accepted for ?ack=
TRUE_WORDS = frozenset({"1", "t", "T", "true", "TRUE", "True"})
FALSE_WORDS = frozenset({"0", "f", "F", "false", "FALSE", "False"})
# Every whole query string that reads as ``?ack=`` and nothing else, to its value: a front that
# sees raw query bytes answers the common case with one dictionary lookup.
ACK_QUERIES: dict[bytes, bool] = {
    b"": False,
    b"ack=": False,
    **{f"ack={word}".encode(): True for word in TRUE_WORDS},
    **{f"ack={word}".encode(): False for word in FALSE_WORDS},
}


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


def parse_bool_query(name: str, raw: str | None) -> bool:
    """A boolean query value as the Go server read it; absent or empty is false."""
    if raw is None or raw == "":
        return False
    if raw in TRUE_WORDS:
        return True
    if raw in FALSE_WORDS:
        return False
    raise validation_problem("expected a boolean", f"query.{name}", raw)


def parse_count_query(raw: str | None) -> int | None:
    """``?count=``: None when absent or empty (the single-message answer), else 1..1000."""
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= DEQUEUE_COUNT_MAX:
        raise validation_problem(
            f"expected an integer in 1..{DEQUEUE_COUNT_MAX}", "query.count", raw[:64]
        )
    return int(raw)


def parse_wait_query(raw: str | None) -> float:
    """``?wait=`` in seconds: 0 when absent or empty, at most ``WAIT_S_MAX``."""
    if raw is None or raw == "":
        return 0.0
    try:
        wait_s = float(raw)
    except ValueError:
        wait_s = -1.0
    if not 0 <= wait_s <= WAIT_S_MAX:  # NaN fails this too
        raise validation_problem(
            f"expected a number of seconds in 0..{WAIT_S_MAX}", "query.wait", raw[:64]
        )
    return wait_s


def messages_queue(path: str) -> str | None:
    """The queue of a ``/API/v1/queues/{name}/messages`` path, or None for any other path (or a
    name longer than a queue name may be, which the routes refuse with their 422)."""
    if not (path.startswith(QUEUES_PREFIX) and path.endswith(MESSAGES_SUFFIX)):
        return None
    queue = path[len(QUEUES_PREFIX) : -len(MESSAGES_SUFFIX)]
    if not queue or "/" in queue or len(queue) > QUEUE_NAME_CHARS_MAX:
        return None
    return queue


class RequestMetrics:
    """``doq_http_requests_total`` and ``doq_http_request_duration_seconds`` for every front,
    with the labelled children kept (the label lookup costs more than the counting)."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def record(self, method: str, route: str, status: int, duration_s: float) -> None:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self._metrics.http_requests.labels(method, route, str(status)),
                self._metrics.http_duration_s.labels(method, route),
            )
        count, duration = children
        count.inc()
        duration.observe(duration_s)


@attrs.define
class ServeDecision:
    service: QueueService
    settings: ApiSettings
    forwarder: Forwarder

    async def serve(
        self,
        call: Callable[[], Awaitable[T]],
        relay: Callable[[], RelayRequest],
        *,
        is_write: bool,
        deadline: float,
    ) -> T | Relayed:
        """``call``'s value when this node leads, else the leader's answer to ``relay()`` (the
        request as the client sent it). Raises ``ApiProblem`` for a service error, a refused or
        lost relay. ``is_write``: the request changes state (dequeue is a write, though it is a
        GET), so a relay cut after it was sent is not sent again. The caller bounds the whole
        call by ``deadline`` (Trio time); the relay itself stops there too."""
        while True:
            try:
                return await call()
            except NotLeaderError as exc:
                if not self.settings.forwarding:
                    raise problem_for_service_error(exc) from None
                leader_id, leader_http = exc.leader_id, exc.leader_http
            except ServiceError as exc:
                raise problem_for_service_error(exc) from None
            if leader_http is None:
                await self.wait_for_leader()
                continue
            outcome = await self._relay(
                leader_id, leader_http, relay(), is_write=is_write, deadline=deadline
            )
            if not isinstance(outcome, Retry):
                return outcome
            await trio.sleep(RETRY_PAUSE_S)

    async def _relay(
        self,
        leader_id: str | None,  # as the service named it, for the problem's detail
        leader_http: str,
        relayed: RelayRequest,
        *,
        is_write: bool,
        deadline: float,
    ) -> Relayed | Retry:
        """The relay to ``leader_id``, given up ``RELAY_GRACE_S`` after this node learns of
        another leader (or leads): a paused or cut-off old leader would hold the request until
        the deadline, seconds after a new leader could have served it (docs/reliability.md,
        finding 3). A read is then tried again; a write that may have been sent answers
        "outcome unknown"."""
        raft = self.service.raft
        known = (raft.is_leader, raft.leader_id)

        def moved_on() -> bool:  # to a leader other than the one known when the relay began
            now = (raft.is_leader, raft.leader_id)
            return now != known and (now[0] or now[1] is not None)

        outcome: Relayed | Retry | ApiProblem | None = None
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                while not moved_on():
                    await self.service.wait_leader_change()
                # An old leader that is alive and reachable answers moments after it stepped
                # down, and its answer may say more than ours ("nothing was dequeued").
                await trio.sleep(RELAY_GRACE_S)
                nursery.cancel_scope.cancel()

            nursery.start_soon(watch)
            try:
                outcome = await self.forwarder.forward(
                    leader_http, relayed, is_write=is_write, deadline=deadline
                )
            except ApiProblem as exc:  # raised in here it would leave the nursery in a group
                outcome = exc
            nursery.cancel_scope.cancel()
        if isinstance(outcome, ApiProblem):
            raise outcome
        if outcome is not None:
            return outcome
        # The watch gave the relay up.
        if is_write:
            raise unavailable(
                f"the leader changed while the request was relayed to {leader_id} at "
                f"{leader_http}; it may or may not have been applied"
            )
        return Retry.READ_FAILED

    async def stream_home(self, deadline: float) -> str | None:
        """Where a stream (doq/api/streams.py) is served: None when this node leads, else the
        leader's HTTP address, for the client to reconnect to. Streams are not relayed, whether
        forwarding is on or off (docs/api.md, "Streams", says why); with no leader known this
        waits for one until ``deadline`` (Trio time), then raises the 503 ``ApiProblem``."""
        with trio.move_on_at(deadline):
            await self.wait_for_leader()
            if self.service.raft.is_leader:
                return None
            leader = self.service.leader()
            if leader is not None and leader.http_address:
                return leader.http_address
        raise unanswered_in_time(self.settings.request_timeout_s, is_write=False)

    async def wait_for_leader(self) -> None:
        """Until this node leads or knows a leader with an HTTP address (cancelled by the
        request's deadline)."""
        while True:
            if self.service.raft.is_leader:
                return
            leader = self.service.leader()
            if leader is not None and leader.http_address:
                return
            await trio.sleep(LEADER_POLL_INTERVAL_S)
