"""The window of command times (doq/clockbound.py), with clocks given as numbers: a leader whose
clock runs fast is held to a majority's clocks plus CLOCK_AHEAD_MS_MAX, small steps do not walk
the bound forward, a lagging leader is lifted, and no window exists without a majority's
estimates (issue 10, finding 4)."""

from __future__ import annotations

from doq.clockbound import (
    CLOCK_AHEAD_MS_MAX,
    CLOCK_PROBE_RTT_MS_MAX,
    CLOCK_SAMPLE_AGE_MS_MAX,
    PeerClocks,
)

REAL_MS = 1_800_000_000_000
HOUR_MS = 3_600_000
RTT_MS = 4
VOTERS3 = ("me", "a", "b")


def probed(clocks: PeerClocks, peer: str, own_ms: int, peer_ms: int, mono_ms: int = 0) -> None:
    """A probe answered in RTT_MS, the peer reading its clock half way."""
    assert clocks.record(peer, own_ms, peer_ms + RTT_MS // 2, own_ms + RTT_MS, mono_ms)


def test_a_leader_an_hour_fast_stamps_at_most_the_bound_ahead_of_the_majority() -> None:
    clocks = PeerClocks()
    own_ms = REAL_MS + HOUR_MS
    probed(clocks, "a", own_ms, REAL_MS)
    probed(clocks, "b", own_ms, REAL_MS + 5)
    window = clocks.window(own_ms, 0, VOTERS3, "me")
    assert window is not None
    stamp_ms = window.clamp(own_ms)
    assert REAL_MS + CLOCK_AHEAD_MS_MAX - RTT_MS <= stamp_ms <= REAL_MS + CLOCK_AHEAD_MS_MAX + 5


def test_one_fast_follower_moves_nothing_and_one_known_peer_of_three_is_enough() -> None:
    clocks = PeerClocks()
    probed(clocks, "a", REAL_MS, REAL_MS + HOUR_MS)
    window = clocks.window(REAL_MS, 0, VOTERS3, "me")
    assert window is not None and window.clamp(REAL_MS) == REAL_MS  # min of {me, a}: me
    probed(clocks, "b", REAL_MS, REAL_MS)
    window = clocks.window(REAL_MS, 0, VOTERS3, "me")
    assert window is not None and window.clamp(REAL_MS) == REAL_MS


def test_no_window_without_a_majority_of_fresh_estimates() -> None:
    clocks = PeerClocks()
    voters5 = ("me", "a", "b", "c", "d")
    assert clocks.window(REAL_MS, 0, voters5, "me") is None
    probed(clocks, "a", REAL_MS, REAL_MS)
    assert clocks.window(REAL_MS, 0, voters5, "me") is None  # 2 of 5
    probed(clocks, "b", REAL_MS, REAL_MS)
    assert clocks.window(REAL_MS, 0, voters5, "me") is not None  # 3 of 5
    stale_mono_ms = CLOCK_SAMPLE_AGE_MS_MAX + 1
    assert clocks.window(REAL_MS, stale_mono_ms, voters5, "me") is None  # aged out
    assert clocks.window(REAL_MS, 0, ("me",), "me") is not None  # one voter: itself


def test_a_slow_round_trip_is_not_kept_and_a_departed_peer_is_forgotten() -> None:
    clocks = PeerClocks()
    assert not clocks.record("a", REAL_MS, REAL_MS, REAL_MS + CLOCK_PROBE_RTT_MS_MAX + 1, 0)
    assert not clocks.record("a", REAL_MS, REAL_MS, REAL_MS - 1, 0)  # our clock stepped back
    assert clocks.skews_ms(0) == {}
    probed(clocks, "a", REAL_MS, REAL_MS - HOUR_MS)
    assert abs(clocks.skews_ms(0)["a"] + HOUR_MS) <= RTT_MS
    clocks.forget_others(["b"])
    assert clocks.skews_ms(0) == {}


def test_small_steps_do_not_walk_the_queue_clock_forward() -> None:
    """A leader whose clock gains a little less than the bound at every probe, for a day: the
    state's clock (the largest stamp) never gets further ahead than the bound."""
    clocks = PeerClocks()
    state_clock_ms = 0
    step_ms = CLOCK_AHEAD_MS_MAX - 1
    for i in range(1440):
        real_ms = REAL_MS + i * 60_000
        own_ms = real_ms + i * step_ms
        probed(clocks, "a", own_ms, real_ms, mono_ms=i)
        probed(clocks, "b", own_ms, real_ms, mono_ms=i)
        window = clocks.window(own_ms, i, VOTERS3, "me")
        assert window is not None
        state_clock_ms = max(state_clock_ms, window.clamp(own_ms))
        assert state_clock_ms <= real_ms + CLOCK_AHEAD_MS_MAX + RTT_MS


def test_a_lagging_leader_is_lifted_to_within_the_bound() -> None:
    clocks = PeerClocks()
    own_ms = REAL_MS - HOUR_MS
    probed(clocks, "a", own_ms, REAL_MS)
    probed(clocks, "b", own_ms, REAL_MS)
    window = clocks.window(own_ms, 0, VOTERS3, "me")
    assert window is not None
    assert window.clamp(own_ms) >= REAL_MS - CLOCK_AHEAD_MS_MAX - RTT_MS
