"""The clock guarantee of doq/clockbound.py, checked against the simulated clocks' true readings.

doq promises (docs/state-machine.md) that no command time runs more than ``CLOCK_AHEAD_MS_MAX``
ahead of the clocks of a majority of the voters. The simulator knows every node's true clock, so
at the first application of each committed command it checks that the command's time is at most
the majority-th largest true clock of the voters, plus the bound, plus ``CLOCK_SLACK_MS``.

Checking at application rather than at stamping only loosens the check (clocks move on), except
for what a clock may lose meanwhile: a backward step (the fault schedule's, up to 3 s) and the
drift between a peer's clock and its estimate over a sample's age (up to 10 s at up to 5% each
way, so 1 s). The slack covers both; a leader that stamps its own clock a minute or more ahead
(finding 4's bug, the ``command_time_unbounded`` plant) is far beyond it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from doq.clockbound import CLOCK_AHEAD_MS_MAX
from doq.commands import CommandDecodeError, decode_command
from raft_zmq.core.types import Entry, EntryKind
from simulations.checkers.raft_safety import Violation

CLOCK_SLACK_MS = 5_000  # backward clock steps and estimate drift (see above)


class ClockBound:
    def __init__(self, true_clock_ms: Callable[[str], int]) -> None:
        self._true_clock_ms = true_clock_ms
        self.checked = 0

    def on_entry(self, entry: Entry, voters: Collection[str]) -> None:
        if entry.kind is not EntryKind.NORMAL or not entry.data or not voters:
            return
        try:
            ts_ms = decode_command(entry.data).ts_ms
        except CommandDecodeError:
            return  # not a doq command: the state machine rejects it, no time to check
        clocks = sorted((self._true_clock_ms(v) for v in voters), reverse=True)
        majority_clock_ms = clocks[len(clocks) // 2]  # at least a majority read at least this
        self.checked += 1
        if ts_ms > majority_clock_ms + CLOCK_AHEAD_MS_MAX + CLOCK_SLACK_MS:
            raise Violation(
                "command time bounded by a majority's clocks",
                f"entry {entry.index} carries time {ts_ms}, "
                f"{ts_ms - majority_clock_ms} ms ahead of a majority of the voters' clocks "
                f"(bound {CLOCK_AHEAD_MS_MAX} ms + slack {CLOCK_SLACK_MS} ms)",
            )
