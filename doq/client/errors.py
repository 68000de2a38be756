"""Typed errors of the doq client: what a problem document (docs/api.md, "Errors") means to a
program, so callers catch ``QueueEmpty`` or ``StaleReceipt`` instead of reading status codes.

Every error carries the HTTP status and the server's detail; ``ValidationFailed`` carries the
failing field's location (``body.priority``, ``body.messages[17].priority``).

The error's class comes from the answer's ``X-Doq-Problem`` header where it has one (the kind
of refusal, doq/api/errors.py: ``queue_not_found``, ``stale_receipt``, ...), so no wording of a
detail decides it; an answer without it (a relayed answer, an older node, the Go server, an
error that is not a refusal by the queue) is read by its status and, for 404 and 409, its detail.
"""

from __future__ import annotations

from typing import Any


class DoqError(Exception):
    """Any answer from doq that is not a success, or no answer at all."""

    def __init__(self, detail: str, status: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status


class BadRequest(DoqError):
    """400 other than an empty queue: a body that is not JSON, or none where one is needed."""


class QueueEmpty(DoqError):
    """400 on dequeue: no message is ready in the queue."""


class NotFound(DoqError):
    """404: the queue or message does not exist, or a message is not in flight."""


class QueueNotFound(NotFound):
    """404: no queue of that name."""


class MessageNotFound(NotFound):
    """404: no message of that ID in the queue, or (ack, nack, touch) it is not in flight."""


class Conflict(DoqError):
    """409: a queue that exists with another type, a strategy change, a membership conflict."""


class StaleReceipt(Conflict):
    """409: the delivery the receipt names is over; the message may be with another consumer."""


class TooLarge(DoqError):
    """413: the body or the command is larger than the node accepts."""


class ValidationFailed(DoqError):
    """422: ``field`` is where the first invalid value is (``body.priority``), when the server
    named it; ``message`` says what is wrong with it."""

    def __init__(self, detail: str, status: int, field: str | None, message: str | None) -> None:
        super().__init__(detail, status)
        self.field = field
        self.message = message

    def __str__(self) -> str:
        return (
            self.detail if self.message is None else f"{self.detail}: {self.field}: {self.message}"
        )


class Unavailable(DoqError):
    """503 after the client's retries, or no node could be reached: no leader, a node stopping,
    a write whose outcome the server could not tell. ``retry_after_s`` is the server's hint."""

    def __init__(self, detail: str, status: int | None = 503, retry_after_s: float | None = None):
        super().__init__(detail, status)
        self.retry_after_s = retry_after_s


class TooManyRequests(DoqError):
    """429: a cap of the node (requests or streams in flight, queues, messages a queue); nothing
    was applied. ``retry_after_s`` is the server's hint."""

    def __init__(self, detail: str, status: int = 429, retry_after_s: float | None = None):
        super().__init__(detail, status)
        self.retry_after_s = retry_after_s


class InsufficientStorage(DoqError):
    """507: the leader's disk is below its reserve; nothing was applied, reads still work."""


class ServerError(DoqError):
    """500 or any other status this client does not know: a bug on the node."""


PROBLEM_KIND_HEADER = "x-doq-problem"
_BY_KIND: dict[str, type[DoqError]] = {
    "queue_not_found": QueueNotFound,
    "message_not_found": MessageNotFound,
    "queue_empty": QueueEmpty,
    "stale_receipt": StaleReceipt,
    "conflict": Conflict,
}


def error_for(
    status: int, body: Any, retry_after_s: float | None = None, kind: str | None = None
) -> DoqError:
    """The typed error for a problem document ``body`` (any JSON, or None) answered with
    ``status`` and the ``X-Doq-Problem`` header's ``kind`` (None when absent)."""
    problem = body if isinstance(body, dict) else {}
    detail = str(problem.get("detail") or f"HTTP {status}")
    errors = problem.get("errors") or []
    first = errors[0] if errors and isinstance(errors[0], dict) else {}
    if kind in _BY_KIND:
        message = first.get("message") if kind == "queue_empty" else None
        return _BY_KIND[kind](str(message or detail), status)
    if status == 422:
        return ValidationFailed(detail, status, first.get("location"), first.get("message"))
    if status == 503:
        return Unavailable(detail, status, retry_after_s)
    if status == 429:
        return TooManyRequests(detail, status, retry_after_s)
    return _by_status(status, detail, first)


def _by_status(status: int, detail: str, first: dict[str, Any]) -> DoqError:
    """Without a kind: the status, and for 400, 404 and 409 the wording the server uses."""
    if status == 400:
        message = str(first.get("message", ""))
        if message.startswith("Queue is empty"):
            return QueueEmpty(message, status)
        return BadRequest(detail, status)
    if status == 404:
        if detail.startswith("message "):
            return MessageNotFound(detail, status)
        if detail.startswith("queue "):  # "queue not found: q" and "queue q not found"
            return QueueNotFound(detail, status)
        return NotFound(detail, status)
    if status == 409:
        return (StaleReceipt if "receipt" in detail else Conflict)(detail, status)
    if status == 413:
        return TooLarge(detail, status)
    if status == 507:
        return InsufficientStorage(detail, status)
    return ServerError(detail, status)
