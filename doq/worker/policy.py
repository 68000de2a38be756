"""The worker's decisions about a failed message, without I/O: how many attempts it has had,
when it is tried again, and what its parked copy records (docs/client.md, "Worker").

Attempts are counted in the message's metadata (``doq_attempts``), which a nack replaces and the
state machine keeps, so every worker that takes the message next sees the count. A redelivery
after an ack deadline (a worker that died) does not count: only a handler's failure does.
"""

from __future__ import annotations

import attrs

ATTEMPTS_KEY = "doq_attempts"
ERROR_KEY = "doq_error"
SOURCE_QUEUE_KEY = "doq_source_queue"
SOURCE_ID_KEY = "doq_source_id"
ERROR_CHARS_MAX = 2000  # a parked message's error text is cut to this many characters


@attrs.frozen
class RetryPolicy:
    """``attempts_max`` failures and the message is parked in ``dead_queue``; between failures
    it waits ``backoff_s_first * 2**(n-1)`` seconds, at most ``backoff_s_max`` (on a delayed
    queue: a fair queue's priority is not a time, so there it is retried at once)."""

    attempts_max: int = 5
    backoff_s_first: float = 1.0
    backoff_s_max: float = 300.0

    def __attrs_post_init__(self) -> None:
        if self.attempts_max < 1:
            raise ValueError("attempts_max must be at least 1")

    def backoff_s(self, attempts: int) -> float:
        return float(min(self.backoff_s_max, self.backoff_s_first * (2 ** max(0, attempts - 1))))

    def exhausted(self, attempts: int) -> bool:
        return attempts >= self.attempts_max


def attempts_of(metadata: dict[str, str] | None) -> int:
    """The failures the message has had so far (0 for a fresh one, or a value we did not write)."""
    raw = (metadata or {}).get(ATTEMPTS_KEY, "0")
    return int(raw) if raw.isdigit() else 0


def retry_metadata(metadata: dict[str, str] | None, attempts: int) -> dict[str, str]:
    return {**(metadata or {}), ATTEMPTS_KEY: str(attempts)}


def parked_metadata(
    metadata: dict[str, str] | None, attempts: int, error: str, queue: str, message_id: int
) -> dict[str, str]:
    return {
        **(metadata or {}),
        ATTEMPTS_KEY: str(attempts),
        ERROR_KEY: error[:ERROR_CHARS_MAX],
        SOURCE_QUEUE_KEY: queue,
        SOURCE_ID_KEY: str(message_id),
    }


def dead_queue_for(queue: str) -> str:
    return f"{queue}.dead"
