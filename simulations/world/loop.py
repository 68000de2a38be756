"""The discrete-event loop: a heap of (virtual time, sequence, callback), run in order.

Virtual time is an integer number of microseconds since the start of the run; nothing here (or
anywhere in the simulator) reads the wall clock. The sequence number breaks ties in the order the
events were scheduled, so two events at the same microsecond always run in the same order and a
seed replays exactly. An event cannot be cancelled: callbacks that may have become stale (a
timeout after its answer, a tick of a node that crashed since) check a generation number of
their own and return.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any

US_PER_MS = 1000
US_PER_S = 1_000_000


class EventLoop:
    def __init__(self) -> None:
        self._heap: list[tuple[int, int, Callable[..., None], tuple[Any, ...]]] = []
        self._sequence = 0
        self.now_us = 0
        self.events_run = 0

    def at(self, time_us: int, callback: Callable[..., None], *args: Any) -> None:
        """Run ``callback(*args)`` at ``time_us`` (never in the past)."""
        assert time_us >= self.now_us, (time_us, self.now_us)
        self._sequence += 1
        heapq.heappush(self._heap, (time_us, self._sequence, callback, args))

    def after(self, delay_us: int, callback: Callable[..., None], *args: Any) -> None:
        assert delay_us >= 0, delay_us
        self.at(self.now_us + delay_us, callback, *args)

    def soon(self, callback: Callable[..., None], *args: Any) -> None:
        """Run after everything already scheduled for this microsecond."""
        self.at(self.now_us, callback, *args)

    def run_until(self, end_us: int, stop: Callable[[], bool] | None = None) -> bool:
        """Run events up to and including ``end_us``; returns True if ``stop()`` became true
        (checked after every event), False when time ran out."""
        heap = self._heap
        while heap and heap[0][0] <= end_us:
            time_us, _, callback, args = heapq.heappop(heap)
            self.now_us = time_us
            callback(*args)
            self.events_run += 1
            if stop is not None and stop():
                return True
        self.now_us = max(self.now_us, end_us)
        return False

    def pending(self) -> int:
        return len(self._heap)
