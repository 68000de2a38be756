"""The run's trace: one line per notable event, folded into a running hash and kept in a ring.

The hash of every line is the run's fingerprint: the same seed must give the same hash byte for
byte (a test runs a seed twice, in processes with different hash randomization, and compares).
The ring keeps the last lines so that a violation can be shown with what led up to it; the whole
trace is kept only when asked for (``--trace``), since most runs only need the fingerprint.
"""

from __future__ import annotations

import hashlib
from collections import deque

TRACE_TAIL_LINES = 60  # lines shown before a violation


class Trace:
    def __init__(self, *, keep_all: bool = False, tail_lines: int = TRACE_TAIL_LINES) -> None:
        self._hash = hashlib.blake2b(digest_size=16)
        self._tail: deque[str] = deque(maxlen=tail_lines)
        self.lines: list[str] | None = [] if keep_all else None
        self.count = 0

    def add(self, time_us: int, text: str) -> None:
        line = f"{time_us / 1e6:11.6f} {text}"
        self._hash.update(line.encode())
        self._hash.update(b"\n")
        self._tail.append(line)
        self.count += 1
        if self.lines is not None:
            self.lines.append(line)

    def digest(self) -> str:
        return self._hash.hexdigest()

    def tail(self) -> list[str]:
        return list(self._tail)
