"""Per-queue enqueue/dequeue/ack/nack rates over a sliding window, from monotonic totals.

The replicated state keeps only counters that grow (``QueueInfo.*_total``): anything that depends on
a node's clock stays out of it (docs/design.md, rule 4). This node samples those totals about once a
second with its own monotonic clock and reports, for each counter, its increase over the window
divided by the time the window spans: the Go server's ``*_rps`` (an average over
``--queue.stats.window_side`` seconds), without per-node event counting.

Pure given the clock handed in; the sampling task lives in the API's nursery.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable

import attrs

from doq.state.results import QueueInfo

SAMPLE_INTERVAL_S = 1.0  # how often the API samples the totals
RATE_ELAPSED_MIN_S = 0.5  # below this span a rate is too noisy to report: 0.0 until then
QUEUES_TRACKED_MAX = 100_000  # a bound on the memory the tracker may use


@attrs.frozen
class Totals:
    enqueued: int
    dequeued: int
    acked: int
    nacked: int

    @classmethod
    def of(cls, info: QueueInfo) -> Totals:
        return cls(info.enqueued_total, info.dequeued_total, info.acked_total, info.nacked_total)

    def never_below(self, other: Totals) -> bool:
        return (
            self.enqueued >= other.enqueued
            and self.dequeued >= other.dequeued
            and self.acked >= other.acked
            and self.nacked >= other.nacked
        )


@attrs.frozen
class Rates:
    enqueue_rps: float = 0.0
    dequeue_rps: float = 0.0
    ack_rps: float = 0.0
    nack_rps: float = 0.0


ZERO_RATES = Rates()


class RateTracker:
    """``observe`` the state's queues now and then; ``rates(info)`` for a queue's current info."""

    def __init__(self, window_s: float, clock_s: Callable[[], float]) -> None:
        if window_s <= 0:
            raise ValueError(f"window_s must be positive, got {window_s}")
        self.window_s = window_s
        self._clock_s = clock_s
        self._samples: dict[str, collections.deque[tuple[float, Totals]]] = {}

    def observe(self, infos: Iterable[QueueInfo]) -> None:
        now_s = self._clock_s()
        seen: set[str] = set()
        for info in infos:
            if len(seen) >= QUEUES_TRACKED_MAX:
                break
            seen.add(info.name)
            self._record(info.name, now_s, Totals.of(info))
        for gone in self._samples.keys() - seen:
            del self._samples[gone]

    def rates(self, info: QueueInfo) -> Rates:
        """Increase of each total since the oldest sample inside the window, per second."""
        samples = self._samples.get(info.name)
        if not samples:
            return ZERO_RATES
        now_s = self._clock_s()
        current = Totals.of(info)
        oldest_s, oldest = self._oldest_in_window(samples, now_s)
        elapsed_s = now_s - oldest_s
        if elapsed_s < RATE_ELAPSED_MIN_S or not current.never_below(oldest):
            return ZERO_RATES
        return Rates(
            enqueue_rps=(current.enqueued - oldest.enqueued) / elapsed_s,
            dequeue_rps=(current.dequeued - oldest.dequeued) / elapsed_s,
            ack_rps=(current.acked - oldest.acked) / elapsed_s,
            nack_rps=(current.nacked - oldest.nacked) / elapsed_s,
        )

    def _record(self, name: str, now_s: float, totals: Totals) -> None:
        samples = self._samples.get(name)
        if samples is None or (samples and not totals.never_below(samples[-1][1])):
            # New queue, or deleted and created again: its totals started over.
            samples = self._samples[name] = collections.deque()
        samples.append((now_s, totals))
        # Keep one sample at or before the window's start so the window is spanned in full.
        while len(samples) > 1 and samples[1][0] <= now_s - self.window_s:
            samples.popleft()

    def _oldest_in_window(
        self, samples: collections.deque[tuple[float, Totals]], now_s: float
    ) -> tuple[float, Totals]:
        for sampled_s, totals in samples:
            if sampled_s >= now_s - self.window_s:
                return sampled_s, totals
        return samples[-1]
