"""What the clients saw: every operation with its invocation and completion times (monotonic
µs since the run began) and its outcome.

- ``ok``: the server answered and the answer says what happened (2xx, and the definite refusals:
  400 "queue empty", 404 "message not found");
- ``failed``: it certainly did not happen (the connection was refused, or a 507: a full disk
  applies nothing, docs/operations.md);
- ``unknown``: it may or may not have happened (a timeout, a 503, any other 5xx); the checkers
  let it take effect at any time after its invocation, or never.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import attrs

OK, FAILED, UNKNOWN = "ok", "failed", "unknown"


@attrs.define
class Op:
    client: int
    queue: str
    kind: str  # create, enqueue, dequeue, ack
    invoke_us: int
    node: str
    id: int = 0  # enqueue and ack: the message ID; dequeue: the ID delivered (when ok)
    ack: bool = False  # dequeue with ack=true
    priority: int = 0
    content: str = ""
    outcome: str | None = None
    status: int = 0  # the HTTP status, 0 without an answer
    complete_us: int | None = None
    empty: bool = False  # a dequeue answered "queue empty"
    not_found: bool = False  # an ack answered "message not found"

    def to_json(self) -> str:
        return json.dumps(attrs.asdict(self), separators=(",", ":"))


class Recorder:
    """The history, shared by the client threads."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.ops: list[Op] = []
        self._lock = threading.Lock()
        self._last: dict[int, Op] = {}

    def now_us(self) -> int:
        return int((time.monotonic() - self.start) * 1e6)

    def invoke(self, **fields: Any) -> Op:
        op = Op(invoke_us=self.now_us(), **fields)
        with self._lock:
            self.ops.append(op)
            self._last[op.client] = op
        return op

    def complete(self, op: Op, outcome: str, status: int = 0) -> None:
        op.complete_us = self.now_us()
        op.outcome = outcome
        op.status = status

    def last_failed(self, client: int) -> bool:
        """Whether the client's latest operation ended without a success."""
        op = self._last.get(client)
        return op is not None and (op.outcome != OK or op.status // 100 != 2)

    def dump(self, path: str) -> None:
        with open(path, "w") as f:
            for op in list(self.ops):
                f.write(op.to_json() + "\n")


def load(path: str) -> list[Op]:
    with open(path) as f:
        return [Op(**json.loads(line)) for line in f if line.strip()]
