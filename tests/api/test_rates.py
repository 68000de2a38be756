"""doq.rates: sliding-window rates from monotonic totals, against a hand-driven clock."""

from __future__ import annotations

import pytest

from doq.commands import QueueType
from doq.rates import ZERO_RATES, RateTracker
from doq.state.results import QueueInfo, QueueSettings


class Clock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def info(name="q", enqueued=0, dequeued=0, acked=0, nacked=0) -> QueueInfo:
    settings = QueueSettings(strategy=None, max_unacked=0, ack_timeout_s=30)
    return QueueInfo(name, QueueType.DELAYED, settings, 0, 0, enqueued, dequeued, acked, nacked, 0)


def test_a_queue_never_sampled_has_zero_rates():
    tracker = RateTracker(10, Clock())
    assert tracker.rates(info(enqueued=100)) == ZERO_RATES


def test_rates_are_the_increase_over_the_window_per_second():
    clock = Clock()
    tracker = RateTracker(10, clock)
    for second in range(11):
        tracker.observe([info(enqueued=50 * second, dequeued=20 * second, acked=10 * second)])
        clock.now_s += 1
    clock.now_s -= 1
    rates = tracker.rates(info(enqueued=500, dequeued=200, acked=100, nacked=0))
    assert rates.enqueue_rps == pytest.approx(50)
    assert rates.dequeue_rps == pytest.approx(20)
    assert rates.ack_rps == pytest.approx(10)
    assert rates.nack_rps == 0


def test_activity_older_than_the_window_no_longer_counts():
    clock = Clock()
    tracker = RateTracker(5, clock)
    tracker.observe([info(enqueued=0)])
    clock.now_s += 1
    tracker.observe([info(enqueued=1000)])  # a burst, then nothing
    for _ in range(10):
        clock.now_s += 1
        tracker.observe([info(enqueued=1000)])
    assert tracker.rates(info(enqueued=1000)).enqueue_rps == 0


def test_a_recreated_queue_starts_over_instead_of_reporting_negative_rates():
    clock = Clock()
    tracker = RateTracker(10, clock)
    tracker.observe([info(enqueued=900)])
    clock.now_s += 1
    tracker.observe([info(enqueued=3)])  # deleted and created again: totals restarted
    clock.now_s += 1
    rates = tracker.rates(info(enqueued=5))
    # counted from zero at the sample before the new queue appeared: 5 in 2 s
    assert rates.enqueue_rps == pytest.approx(2.5)


def test_deleted_queues_are_forgotten_and_short_spans_report_zero():
    clock = Clock()
    tracker = RateTracker(10, clock)
    tracker.observe([info("a"), info("b")])
    tracker.observe([info("a")])
    clock.now_s += 0.1
    assert tracker.rates(info("a", enqueued=10)) == ZERO_RATES  # 0.1 s is too short to tell
    assert tracker.rates(info("b", enqueued=10)) == ZERO_RATES


def test_the_window_must_be_positive():
    with pytest.raises(ValueError):
        RateTracker(0, Clock())


def test_a_burst_right_after_a_queue_is_created_counts():
    """Issue 11, §5: 4 enqueues in a new queue's first second used to read 0.0 for a window."""
    clock = Clock()
    tracker = RateTracker(10, clock)
    tracker.observe([])  # the sampler ran before the queue existed
    clock.now_s += 1
    tracker.observe([info(enqueued=4)])  # created and 4 enqueues before this sample
    clock.now_s += 0.5
    assert tracker.rates(info(enqueued=4)).enqueue_rps == pytest.approx(4 / 1.5)
    for _ in range(8):
        clock.now_s += 1
        tracker.observe([info(enqueued=4)])
    assert tracker.rates(info(enqueued=4)).enqueue_rps == pytest.approx(4 / 9.5)


def test_the_queues_of_a_starting_node_count_from_their_first_sample():
    clock = Clock()
    tracker = RateTracker(10, clock)
    tracker.observe([info(enqueued=1000)])  # history, not a burst
    clock.now_s += 1
    assert tracker.rates(info(enqueued=1000)) == ZERO_RATES
