"""RFC 9457 problem documents: the one shape every error of the API takes (API.md).

``ApiProblem`` is raised anywhere in a request and turned into a response by the handlers that
``install_error_handlers`` registers; those handlers also turn Werkzeug's HTTP errors (404 unknown
path, 405, 413, 400) and the service's exceptions into problems, and an exception nobody expected
into a logged 500 problem, never an HTML page.
"""

from __future__ import annotations

import http
import logging
from typing import Any

import msgspec
from quart import Response, current_app, request
from quart_schema import RequestSchemaValidationError
from werkzeug.exceptions import HTTPException

from doq.api.links import schema_url
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

log = logging.getLogger("doq.api")

_SERVICE_ERRORS = (
    RejectedError,
    UnavailableError,
    TooLargeError,
    NotLeaderError,
    InsufficientStorageError,
    OverLimitError,
)

_ENCODER = msgspec.json.Encoder()

# API.md's status for each kind of refusal by the state machine.
_REJECT_STATUS = {
    RejectCode.QUEUE_NOT_FOUND: 404,
    RejectCode.MESSAGE_NOT_FOUND: 404,
    RejectCode.CONFLICT: 409,
    RejectCode.QUEUE_EMPTY: 400,
    RejectCode.INVALID: 422,
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


def problem_response(problem: ApiProblem) -> Response:
    return Response(
        problem_body(problem, schema_url(ERROR_MODEL)),
        status=problem.status,
        headers=problem.headers,
        content_type=PROBLEM_CONTENT_TYPE,
    )


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


def problem_for_service_error(exc: Exception) -> ApiProblem:
    """The problem for an exception the queue service raised."""
    if isinstance(exc, RejectedError):
        status = _REJECT_STATUS[exc.code]
        if exc.code is RejectCode.QUEUE_EMPTY:
            return ApiProblem(
                status,
                "Failed to dequeue a message from a queue",
                [ErrorDetail(message=exc.detail)],
            )
        if status == 422:
            return ApiProblem(status, VALIDATION_FAILED, [ErrorDetail(message=exc.detail)])
        return ApiProblem(status, exc.detail)
    if isinstance(exc, UnavailableError):
        return unavailable(str(exc), exc.retry_after_s)
    if isinstance(exc, TooLargeError):
        return ApiProblem(413, str(exc))
    if isinstance(exc, OverLimitError):
        return ApiProblem(429, str(exc), retry_after_s=exc.retry_after_s)
    if isinstance(exc, InsufficientStorageError):
        return ApiProblem(507, str(exc), retry_after_s=exc.retry_after_s)
    if isinstance(exc, NotLeaderError):
        # Only reached when forwarding is off or exhausted: tell the client where to go.
        where = f" at {exc.leader_http}" if exc.leader_http else ""
        return unavailable(f"this node is not the leader (leader: {exc.leader_id}{where})")
    raise TypeError(f"not a service error: {exc!r}")


def install_error_handlers(app: Any) -> None:
    @app.errorhandler(ApiProblem)
    async def on_problem(problem: ApiProblem) -> Response:
        return problem_response(problem)

    @app.errorhandler(RequestSchemaValidationError)
    async def on_schema_validation(error: RequestSchemaValidationError) -> Response:
        message = str(error.validation_error)
        return problem_response(ApiProblem(422, VALIDATION_FAILED, [ErrorDetail(message=message)]))

    @app.errorhandler(HTTPException)
    async def on_http_exception(error: HTTPException) -> Response:
        status = error.code or 500
        detail = _http_detail(error, status)
        headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
        return problem_response(ApiProblem(status, detail, headers=headers))

    @app.errorhandler(Exception)
    async def on_unexpected(error: Exception) -> Response:
        original = getattr(error, "original_exception", None) or error
        if isinstance(original, _SERVICE_ERRORS):
            return problem_response(problem_for_service_error(original))
        log.error("unexpected error in %s %s", request.method, request.path, exc_info=original)
        return problem_response(ApiProblem(500, "internal error; it has been logged"))


def _http_detail(error: HTTPException, status: int) -> str:
    if status == 404:
        return f"no such resource: {request.method} {request.path}"
    if status == 405:
        return f"method {request.method} is not allowed on {request.path}"
    if status == 413:
        limit_bytes = current_app.config.get("MAX_CONTENT_LENGTH")
        return f"request body is larger than this server accepts ({limit_bytes} bytes)"
    return error.description or title_of(status)
