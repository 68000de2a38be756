"""Each node's own clock: the simulated wall clock it stamps commands with and paces its ticks by.

A node's clock reads ``BASE_UNIX_MS + offset + elapsed x (1 + drift)``, where ``elapsed`` is the
virtual time since the start: it starts off by an offset, runs fast or slow by its drift, and can
be stepped forward or back (an NTP step) by the fault schedule. The leader stamps every command
with this clock (doq/service.py), so skew and drift between leaders reach the replicated state,
which must stay safe under them (doq/state: each command's effective time is the larger of its
stamp and the largest stamp applied).
"""

from __future__ import annotations

BASE_UNIX_MS = 1_750_000_000_000  # 2025-06-15: the virtual wall-clock time at the start of a run


class NodeClock:
    def __init__(self, offset_ms: int, drift: float) -> None:
        assert -0.5 < drift < 0.5, drift
        self.offset_ms = offset_ms
        self.drift = drift

    def unix_ms(self, now_us: int) -> int:
        return BASE_UNIX_MS + self.offset_ms + int(now_us * (1.0 + self.drift)) // 1000

    def local_interval_us(self, interval_us: int) -> int:
        """How much virtual time an interval of this clock takes (a fast clock ticks sooner)."""
        return max(1, round(interval_us / (1.0 + self.drift)))

    def step(self, delta_ms: int) -> None:
        self.offset_ms += delta_ms
