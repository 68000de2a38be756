"""How far ahead of the cluster a command's time may run: the leader's clock, bounded by its peers.

The state's clock is the largest command time applied (doq/state/machine.py), so a single leader
whose clock ran an hour fast would fix the queue's clock an hour ahead: messages delayed by less
than an hour delivered at once, in-flight messages of dead consumers not redelivered for an hour.
So the leader no longer stamps its own clock blindly. Every node estimates its offset to each
voter NTP-style (doq/peerclock.py asks a peer's ``/API/v1/cluster/time``: our send time, its
time, our receive time), and a command's time is the node's own clock clamped to

    [estimate - CLOCK_AHEAD_MS_MAX, estimate + CLOCK_AHEAD_MS_MAX]

where ``estimate`` is our clock plus the majority-th largest offset among the voters, our own
offset (0) included. With ``q`` the size of a majority, at least ``q`` voters' clocks read at
least the estimate (see ``ceiling_ms``), so **no command time is more than CLOCK_AHEAD_MS_MAX
ahead of the clocks of a majority of voters**; and since each bound is taken from the peers'
clocks now, never from the state's clock or an earlier stamp, no sequence of small steps walks the
queue's clock forward. The same clamp from below keeps a leader whose clock lags from freezing
the queue's clock. Offsets use the side of the round trip that understates the peer's clock
(the peer read its clock before we received its answer), so the bound holds whatever the delay.

Until a majority of voters (itself included) has a fresh estimate, ``window`` is None and the
leader does not write (doq/service.py waits a bounded time, then answers 503). Sans-I/O: times
come in as arguments (wall-clock and monotonic milliseconds); nothing here reads a clock.
"""

from __future__ import annotations

from collections.abc import Collection

import attrs

CLOCK_AHEAD_MS_MAX = 60_000  # as far as a command time may run ahead of a majority's clocks
CLOCK_SAMPLE_AGE_MS_MAX = 10_000  # an offset measured longer ago than this is not used
CLOCK_PROBE_RTT_MS_MAX = 2_000  # a round trip slower than this says too little to keep
# A planted bug (issue 10 finding 4 put back): the window lets any time through, so a leader
# stamps its own clock however far ahead it runs. Only the simulator sets it (``PeerClocks(
# plants=...)``, simulations/plants.py) to prove its clock checker can fail; production never does.
PLANT_COMMAND_TIME_UNBOUNDED = "command_time_unbounded"


@attrs.frozen
class ClockSample:
    """One probe of a peer: its clock minus ours, as a range, and when (our monotonic ms)."""

    offset_low_ms: int  # peer time - our receive time: never above the true offset
    offset_high_ms: int  # peer time - our send time: never below it
    taken_at_ms: int

    @property
    def skew_ms(self) -> int:
        """The best single guess of the offset: the middle of the range."""
        return (self.offset_low_ms + self.offset_high_ms) // 2


@attrs.frozen
class Window:
    """The times a command may carry now, and the clamp of our own clock into them."""

    floor_ms: int
    ceiling_ms: int

    def clamp(self, own_ms: int) -> int:
        return min(max(own_ms, self.floor_ms), self.ceiling_ms)


def probe_sample(sent_ms: int, peer_ms: int, received_ms: int, taken_at_ms: int) -> ClockSample:
    return ClockSample(peer_ms - received_ms, peer_ms - sent_ms, taken_at_ms)


class PeerClocks:
    """The latest offset sample of each peer, and the window they allow."""

    def __init__(
        self,
        ahead_ms_max: int = CLOCK_AHEAD_MS_MAX,
        sample_age_ms_max: int = CLOCK_SAMPLE_AGE_MS_MAX,
        plants: frozenset[str] = frozenset(),
    ) -> None:
        self.ahead_ms_max = ahead_ms_max
        self._unbounded = PLANT_COMMAND_TIME_UNBOUNDED in plants
        self._sample_age_ms_max = sample_age_ms_max
        self._samples: dict[str, ClockSample] = {}

    def record(self, peer: str, sent_ms: int, peer_ms: int, received_ms: int, mono_ms: int) -> bool:
        """Keep the probe's sample; False (and nothing kept) when its round trip was too slow."""
        if not 0 <= received_ms - sent_ms <= CLOCK_PROBE_RTT_MS_MAX:
            return False
        self._samples[peer] = probe_sample(sent_ms, peer_ms, received_ms, mono_ms)
        return True

    def forget_others(self, peers: Collection[str]) -> None:
        """Drop the samples of nodes that are no longer peers."""
        for peer in set(self._samples) - set(peers):
            del self._samples[peer]

    def skews_ms(self, mono_ms: int) -> dict[str, int]:
        """Each peer's fresh offset (its clock minus ours), for the metrics."""
        return {peer: s.skew_ms for peer, s in self._fresh(mono_ms).items()}

    def window(self, own_ms: int, mono_ms: int, voters: Collection[str], me: str) -> Window | None:
        """The window of command times now (``own_ms``: our wall clock), or None while fewer
        than a majority of ``voters`` (``me`` counts when a voter) have a fresh estimate."""
        estimate = self.estimate_ms(own_ms, mono_ms, voters, me)
        if estimate is None:
            return None
        if self._unbounded:
            return Window(0, 2**63)
        return Window(estimate - self.ahead_ms_max, estimate + self.ahead_ms_max)

    def estimate_ms(
        self, own_ms: int, mono_ms: int, voters: Collection[str], me: str
    ) -> int | None:
        """The majority-th largest clock among the voters with a fresh estimate: at least a
        majority of all voters read at least this (the unknown ones can only add larger clocks
        above it or push it up), and for a full odd set it is the median."""
        majority = len(voters) // 2 + 1
        fresh = self._fresh(mono_ms)
        offsets = [fresh[v].offset_low_ms for v in voters if v != me and v in fresh]
        if me in voters:
            offsets.append(0)
        if len(offsets) < majority:
            return None
        offsets.sort(reverse=True)
        return own_ms + offsets[majority - 1]

    def _fresh(self, mono_ms: int) -> dict[str, ClockSample]:
        return {
            peer: s
            for peer, s in self._samples.items()
            if mono_ms - s.taken_at_ms <= self._sample_age_ms_max
        }
