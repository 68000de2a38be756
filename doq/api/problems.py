"""RFC 9457 problem documents: the one shape every error of the API takes (API.md).

``ApiProblem`` is raised anywhere in a request and turned into a response by the handlers that
``install_error_handlers`` registers; those handlers also turn Werkzeug's HTTP errors (404 unknown
path, 405, 413, 400) and the service's exceptions into problems, and an exception nobody expected
into a logged 500 problem, never an HTML page. The problem values themselves are framework-free
(doq/api/errors.py); the names are re-exported here for the routes.
"""

from __future__ import annotations

import logging
from typing import Any

from quart import Response, current_app, has_websocket_context, request, websocket
from quart_schema import RequestSchemaValidationError
from werkzeug.exceptions import HTTPException

from doq.api.errors import (
    ERROR_MODEL,
    PROBLEM_CONTENT_TYPE,
    RETRY_AFTER_S_DEFAULT,
    VALIDATION_FAILED,
    ApiProblem,
    problem_asgi_headers,
    problem_body,
    problem_for_service_error,
    title_of,
    unavailable,
    validation_problem,
)
from doq.api.links import schema_url
from doq.api.schemas import ErrorDetail
from doq.service import (
    InsufficientStorageError,
    NotLeaderError,
    OverLimitError,
    RejectedError,
    TooLargeError,
    UnavailableError,
)

__all__ = [  # the framework-free values, re-exported for the routes
    "ERROR_MODEL",
    "PROBLEM_CONTENT_TYPE",
    "RETRY_AFTER_S_DEFAULT",
    "VALIDATION_FAILED",
    "ApiProblem",
    "install_error_handlers",
    "problem_asgi_headers",
    "problem_body",
    "problem_for_service_error",
    "problem_response",
    "title_of",
    "unavailable",
    "validation_problem",
]

log = logging.getLogger("doq.api")

_SERVICE_ERRORS = (
    RejectedError,
    UnavailableError,
    TooLargeError,
    NotLeaderError,
    InsufficientStorageError,
    OverLimitError,
)


def problem_response(problem: ApiProblem) -> Response:
    return Response(
        problem_body(problem, schema_url(ERROR_MODEL)),
        status=problem.status,
        headers=problem.headers,
        content_type=PROBLEM_CONTENT_TYPE,
    )


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
        if status == 405 and has_websocket_context():
            # A path with HTTP routes and no WebSocket: for a WebSocket it is not there.
            return problem_response(ApiProblem(404, _http_detail(error, status)))
        detail = _http_detail(error, status)
        headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
        return problem_response(ApiProblem(status, detail, headers=headers))

    @app.errorhandler(Exception)
    async def on_unexpected(error: Exception) -> Response:
        original = getattr(error, "original_exception", None) or error
        if isinstance(original, _SERVICE_ERRORS):
            return problem_response(problem_for_service_error(original))
        log.error("unexpected error in %s", _what(), exc_info=original)
        return problem_response(ApiProblem(500, "internal error; it has been logged"))


def _what() -> str:
    """The request being answered, for a log line or a problem's detail."""
    if has_websocket_context():
        return f"WebSocket {websocket.path}"
    return f"{request.method} {request.path}"


def _http_detail(error: HTTPException, status: int) -> str:
    if has_websocket_context() and status in (404, 405):
        return f"no such resource: {_what()}"
    if status == 404:
        return f"no such resource: {request.method} {request.path}"
    if status == 405:
        return f"method {request.method} is not allowed on {request.path}"
    if status == 413:
        limit_bytes = current_app.config.get("MAX_CONTENT_LENGTH")
        return f"request body is larger than this server accepts ({limit_bytes} bytes)"
    return error.description or title_of(status)
