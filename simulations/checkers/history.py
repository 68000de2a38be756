"""The client history: every operation with when it was invoked, when (and how) it returned.

Next to what the clients saw, the history keeps what only the simulator can know: which log entry
(index, term) each request was proposed as. At the end, an operation whose outcome the client
never learnt (a timeout, "unavailable") is resolved from the committed log: if its entry was
committed it took effect, with the result every replica computed, no later than the moment the
entry was first applied; if it was never proposed, or its entry was overwritten, it never took
effect. Only when neither can be told (the run ended with the entry beyond the commit index) does
it stay unknown, and the linearizability check treats it as such (it may or may not have
happened, at any time after its invocation).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from simulations.checkers.queue_safety import AppliedEntry
from simulations.checkers.raft_safety import CommittedEntry
from simulations.wire import Op, Outcome


@attrs.define
class OpRecord:
    request_id: int
    client: str
    op: Op
    invoke_us: int
    node: str  # the node the client asked
    outcome: Outcome | None = None  # None while pending
    result: Any = None
    response_us: int | None = None
    attempt: int = 1  # 2 and more: a retry of the same operation

    @property
    def pending(self) -> bool:
        return self.outcome is None


@attrs.frozen
class Fate:
    """What the committed log says about a request: whether it took effect, its result and the
    time its entry was first applied. ``known`` is False when the log cannot tell."""

    known: bool
    took_effect: bool = False
    result: Any = None
    applied_us: int | None = None


class History:
    def __init__(self) -> None:
        self.records: list[OpRecord] = []
        self._by_id: dict[int, OpRecord] = {}
        self.proposed: dict[int, tuple[int, int]] = {}  # request ID -> (index, term)
        self._next_id = 0

    def invoke(self, client: str, op: Op, now_us: int, node: str, attempt: int) -> OpRecord:
        self._next_id += 1
        record = OpRecord(self._next_id, client, op, now_us, node, attempt=attempt)
        self.records.append(record)
        self._by_id[record.request_id] = record
        return record

    def complete(self, request_id: int, outcome: Outcome, result: Any, now_us: int) -> None:
        record = self._by_id[request_id]
        assert record.pending, record
        record.outcome = outcome
        record.result = result
        record.response_us = now_us

    def on_proposed(self, request_id: int, index: int, term: int) -> None:
        assert request_id not in self.proposed, ("a request proposed twice", request_id)
        self.proposed[request_id] = (index, term)

    def fate(
        self,
        request_id: int,
        committed: Mapping[int, CommittedEntry],
        applied: Mapping[int, AppliedEntry],
    ) -> Fate:
        """Resolve a request from the committed log: the term committed at each index, and the
        result and first apply time of each index."""
        entry = self.proposed.get(request_id)
        if entry is None:
            return Fate(known=True, took_effect=False)  # never proposed
        index, term = entry
        if index not in committed or index not in applied:
            return Fate(known=False)  # beyond what was committed when the run ended
        if committed[index].term != term:
            return Fate(known=True, took_effect=False)  # overwritten by another leader's entry
        done = applied[index]
        return Fate(True, True, done.result, done.applied_us)
