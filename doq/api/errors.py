"""Problem values without a web framework: what an error answer says, for every door into doq.

``ApiProblem`` and the functions that build and encode problem documents (RFC 9457) live here,
apart from the Quart error handlers (doq/api/problems.py), so that the serve decision
(doq/api/serving.py), the forwarder and the fast path, which answer from ASGI or from no framework
at all, produce the very bytes the routes produce without importing Quart.
"""

from __future__ import annotations

import http
from typing import Any

import msgspec

from doq.api.schemas import ErrorDetail, ErrorModel
from doq.service import (
    InsufficientStorageError,
    NotLeaderError,
    OverLimitError,
    RejectedError,
    TooLargeError,
    UnavailableError,
)
from doq.state.results import RejectCode

PROBLEM_CONTENT_TYPE = "application/problem+json"
VALIDATION_FAILED = "validation failed"
RETRY_AFTER_S_DEFAULT = 1
ERROR_MODEL = "ErrorModel"  # the schema name of every problem document
# The kind of a refusal by the state machine (``RejectCode``'s value: queue_not_found,
# message_not_found, conflict, queue_empty, stale_receipt, invalid), for clients to tell errors
# apart without reading the detail. A header, so that the body keeps the Go server's bytes.
PROBLEM_KIND_HEADER = "X-Doq-Problem"

_ENCODER = msgspec.json.Encoder()

# API.md's status for each kind of refusal by the state machine.
_REJECT_STATUS = {
    RejectCode.QUEUE_NOT_FOUND: 404,
    RejectCode.MESSAGE_NOT_FOUND: 404,
    RejectCode.CONFLICT: 409,
    RejectCode.QUEUE_EMPTY: 400,
    RejectCode.INVALID: 422,
    RejectCode.STALE_RECEIPT: 409,
}


class ApiProblem(Exception):
    """Answer the request with this problem document."""

    def __init__(
        self,
        status: int,
        detail: str,
        errors: list[ErrorDetail] | None = None,
        *,
        retry_after_s: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors
        self.headers = dict(headers or {})
        if retry_after_s is not None:
            self.headers["Retry-After"] = str(retry_after_s)


def title_of(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem_body(problem: ApiProblem, schema: str) -> bytes:
    body = ErrorModel(
        schema=schema,
        title=title_of(problem.status),
        status=problem.status,
        detail=problem.detail,
        errors=problem.errors,
    )
    return _ENCODER.encode(body)


def problem_asgi_headers(problem: ApiProblem, body_bytes: int) -> list[tuple[bytes, bytes]]:
    """The headers ``problem_response`` makes Quart send, in its order (the problem's own, then
    Content-Type, then Content-Length), for answering from ASGI directly."""
    headers = [(name.lower().encode(), value.encode()) for name, value in problem.headers.items()]
    headers.append((b"content-type", PROBLEM_CONTENT_TYPE.encode()))
    headers.append((b"content-length", str(body_bytes).encode()))
    return headers


def validation_problem(message: str, location: str, value: Any = None) -> ApiProblem:
    detail = ErrorDetail(message=message, location=location, value=value)
    return ApiProblem(422, VALIDATION_FAILED, [detail])


def unavailable(detail: str, retry_after_s: int = RETRY_AFTER_S_DEFAULT) -> ApiProblem:
    return ApiProblem(503, detail, retry_after_s=retry_after_s)


def status_of_rejection(code: RejectCode) -> int:
    """API.md's status for a refusal by the state machine (a batch item's own status too)."""
    return _REJECT_STATUS[code]


def problem_for_service_error(exc: Exception) -> ApiProblem:
    """The problem for an exception the queue service raised."""
    if isinstance(exc, RejectedError):
        status = _REJECT_STATUS[exc.code]
        kind = {PROBLEM_KIND_HEADER: exc.code.value}
        if exc.code is RejectCode.QUEUE_EMPTY:
            return ApiProblem(
                status,
                "Failed to dequeue a message from a queue",
                [ErrorDetail(message=exc.detail)],
                headers=kind,
            )
        if status == 422:
            errors = [ErrorDetail(message=exc.detail)]
            return ApiProblem(status, VALIDATION_FAILED, errors, headers=kind)
        return ApiProblem(status, exc.detail, headers=kind)
    if isinstance(exc, UnavailableError):
        return unavailable(str(exc), exc.retry_after_s)
    if isinstance(exc, TooLargeError):
        return ApiProblem(413, str(exc))
    if isinstance(exc, InsufficientStorageError):
        return ApiProblem(507, str(exc), retry_after_s=exc.retry_after_s)
    if isinstance(exc, OverLimitError):
        return ApiProblem(429, str(exc), retry_after_s=exc.retry_after_s)
    if isinstance(exc, NotLeaderError):
        # Only reached when forwarding is off or exhausted: tell the client where to go.
        where = f" at {exc.leader_http}" if exc.leader_http else ""
        return unavailable(f"this node is not the leader (leader: {exc.leader_id}{where})")
    raise TypeError(f"not a service error: {exc!r}")
