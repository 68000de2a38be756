"""The clock guarantee of doq/clockbound.py, checked against the simulated clocks' true readings.

doq promises (docs/state-machine.md) that no command time runs more than ``CLOCK_AHEAD_MS_MAX``
ahead of the clocks of a majority of the voters. The simulator knows every node's true clock, so
at the first application of each committed command it checks that the command's time is at most
the majority-th largest true clock of the voters, plus the bound, plus ``CLOCK_SLACK_MS``. The
voters are those of the configuration in force at the entry, or of the one before it (a change
may be appended between the leader's stamp and its proposal's append): the check passes if
either allows the time.

Checking at application rather than at stamping only loosens the check (clocks move on), except
for what a clock may lose meanwhile: a backward step (the fault schedule's, up to 3 s) and the
drift between a peer's clock and its estimate over a sample's age (up to 10 s at up to 5% each
way, so 1 s). The slack covers both; a leader that stamps its own clock a minute or more ahead
(finding 4's bug, the ``command_time_unbounded`` plant) is far beyond it.
"""

from __future__ import annotations

from collections.abc import Callable

from doq.clockbound import CLOCK_AHEAD_MS_MAX
from doq.commands import CommandDecodeError, decode_command
from raft_zmq.core.configcodec import decode_config
from raft_zmq.core.types import Entry, EntryKind
from simulations.checkers.raft_safety import Violation

CLOCK_SLACK_MS = 5_000  # backward clock steps and estimate drift (see above)


class ClockBound:
    def __init__(self, true_clock_ms: Callable[[str], int]) -> None:
        self._true_clock_ms = true_clock_ms
        # The voters of the last two configurations on the committed stream: the leader that
        # stamped a command held one of them (a change may land between stamp and append).
        self._voters: tuple[frozenset[str], ...] = ()
        self.checked = 0

    def on_entry(self, entry: Entry) -> None:
        """Each committed entry once, in log order."""
        if entry.kind is EntryKind.CONFIG:
            self._voters = (*self._voters[-1:], decode_config(entry.data).voters)
            return
        if entry.kind is not EntryKind.NORMAL or not entry.data or not self._voters:
            return
        try:
            ts_ms = decode_command(entry.data).ts_ms
        except CommandDecodeError:
            return  # not a doq command: the state machine rejects it, no time to check
        self.checked += 1
        ahead_ms = min(ts_ms - self._majority_clock_ms(voters) for voters in self._voters)
        if ahead_ms > CLOCK_AHEAD_MS_MAX + CLOCK_SLACK_MS:
            raise Violation(
                "command time bounded by a majority's clocks",
                f"entry {entry.index} carries time {ts_ms}, {ahead_ms} ms ahead of a majority "
                f"of the voters' clocks (bound {CLOCK_AHEAD_MS_MAX} ms + slack "
                f"{CLOCK_SLACK_MS} ms)",
            )

    def _majority_clock_ms(self, voters: frozenset[str]) -> int:
        """At least a majority of ``voters`` read at least this now."""
        clocks = sorted((self._true_clock_ms(v) for v in voters), reverse=True)
        return clocks[len(clocks) // 2]
