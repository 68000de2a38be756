"""A REST problem answer as a gRPC status: the code, its message, and Retry-After as metadata.

One table, so that every call maps the REST statuses (docs/api.md) the same way (docs/grpc.md,
"Errors"). The Go server answered every failure with ``Unknown``; a client can now tell a missing
queue from an invalid request from a leader it should wait for.
"""

from __future__ import annotations

from typing import Any

import msgspec
from grpclib.const import Status

from doq.grpc.rest import RestAnswer

EMPTY_QUEUE_STATUS = 400  # the REST dequeue's answer for an empty queue (its only 400)
DETAIL_CHARS_MAX = 1000  # a status message longer than this is cut
# What a gRPC client must do that an HTTP client reads from WWW-Authenticate.
UNAUTHENTICATED_HINT = "send the metadata 'authorization: Bearer <token>'"

_CODES = {
    400: Status.FAILED_PRECONDITION,  # the queue is empty
    401: Status.UNAUTHENTICATED,  # the API has tokens (docs/operations.md, "Security")
    403: Status.PERMISSION_DENIED,  # the token lacks the route's scope
    404: Status.NOT_FOUND,
    413: Status.INVALID_ARGUMENT,  # larger than one log entry may be: never accepted
    422: Status.INVALID_ARGUMENT,
    429: Status.RESOURCE_EXHAUSTED,  # over an in-flight cap or a queue quota
    503: Status.UNAVAILABLE,  # no leader in time, or forwarding off: names the leader
    507: Status.RESOURCE_EXHAUSTED,  # the leader's disk is short of its reserve
}


def status_of(
    answer: RestAnswer, conflict: Status
) -> tuple[Status, str, tuple[tuple[str, str], ...]]:
    """``conflict``: the code of a 409, which depends on the call (ALREADY_EXISTS for a queue that
    exists with another type, FAILED_PRECONDITION for a delivery that is over)."""
    if answer.status == 409:
        code = conflict
    elif answer.status in _CODES:
        code = _CODES[answer.status]
    elif answer.status < 500:
        code = Status.INVALID_ARGUMENT
    else:
        code = Status.INTERNAL
    trailers = tuple(
        ("retry-after", value.decode("latin-1"))
        for name, value in answer.headers
        if name.lower() == b"retry-after"
    )
    detail = _detail(answer)
    if answer.status == 401:
        detail = f"{detail}; {UNAUTHENTICATED_HINT}"
    return code, detail[:DETAIL_CHARS_MAX], trailers


def _detail(answer: RestAnswer) -> str:
    try:
        problem = answer.json()
    except msgspec.DecodeError:
        return answer.body.decode("utf-8", "replace") or f"HTTP {answer.status}"
    if not isinstance(problem, dict):
        return f"HTTP {answer.status}"
    parts = [str(problem.get("detail") or problem.get("title") or f"HTTP {answer.status}")]
    for error in problem.get("errors") or ():
        parts.append(_error_text(error))
    return ": ".join(parts)


def _error_text(error: Any) -> str:
    if not isinstance(error, dict):
        return str(error)
    where = error.get("location")
    message = str(error.get("message", ""))
    return f"{message} ({where})" if where else message
