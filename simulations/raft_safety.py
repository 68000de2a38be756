"""Raft's safety properties, checked as events happen (Raft paper, Figure 3).

- Election safety: at most one leader per term (checked whenever a node becomes leader).
- Log matching: an entry (index, term) has the same command and the same predecessor term in
  every log that holds it. Checked on every durable write: the first sight of (index, term)
  records its data digest and the term before it; every later sight must agree. By induction
  two logs that share an entry then share the whole prefix, which is the property itself.
- Leader completeness: a new leader's log holds every entry committed in an earlier term
  (checked at election, against every index it has not compacted away).
- State machine safety: a committed entry never changes (the first node to commit an index fixes
  its term and data; every other node must commit the same), never disappears from a log that
  held it (no durable write may drop it), and every node applies the same sequence (the queue
  checker compares the results and the states the nodes reach).
A broken property raises ``Violation``, which stops the run with the seed and the last events.
"""

from __future__ import annotations

import hashlib

import attrs

from raft_zmq.core.raft import RaftCore
from raft_zmq.core.ready import Role, SoftState
from raft_zmq.core.types import Entry
from simulations.disk import CompletedWrite, PendingWrite


class Violation(Exception):
    """An invariant does not hold: the run stops here."""

    def __init__(self, invariant: str, detail: str) -> None:
        super().__init__(f"{invariant}: {detail}")
        self.invariant = invariant
        self.detail = detail


def entry_digest(entry: Entry) -> bytes:
    return hashlib.blake2b(bytes((entry.kind,)) + entry.data, digest_size=8).digest()


@attrs.define
class CommittedEntry:
    term: int
    digest: bytes
    node: str  # the first node seen committing it
    # An upper bound of the term in which it was committed: a node that learns of a commit in
    # term t proves it happened in t or before. Leader completeness binds leaders of later terms.
    commit_term: int


class RaftSafety:
    def __init__(self) -> None:
        self.leaders: dict[int, str] = {}  # term -> the node that led it
        self._seen: dict[tuple[int, int], tuple[bytes, int]] = {}  # (index, term) -> (digest, prev)
        self.committed: dict[int, CommittedEntry] = {}
        self.commit_index = 0  # every index up to here is in ``committed``

    # --- election safety and leader completeness ------------------------------------------------
    def on_soft_state(self, node_id: str, soft: SoftState, core: RaftCore) -> None:
        if soft.role is not Role.LEADER:
            return
        first = self.leaders.setdefault(soft.term, node_id)
        if first != node_id:
            raise Violation(
                "election safety", f"{node_id} and {first} are both leaders of term {soft.term}"
            )
        self._check_completeness(node_id, core)

    def _check_completeness(self, node_id: str, core: RaftCore) -> None:
        for index in range(max(core.log.first_index() - 1, 1), self.commit_index + 1):
            term = core.log.term(index)
            expected = self.committed[index]
            if term != expected.term and expected.commit_term < core.term:
                raise Violation(
                    "leader completeness",
                    f"{node_id} became leader of term {core.term} holding "
                    f"{'nothing' if term is None else f'term {term}'} at index {index}, where "
                    f"an entry of term {expected.term} was committed (first by {expected.node}) "
                    f"by term {expected.commit_term}",
                )

    # --- log matching and committed entries on disk ---------------------------------------------
    def on_persisted(self, node_id: str, write: PendingWrite, done: CompletedWrite) -> None:
        prev_term = done.prev_term
        for entry in write.entries:
            key = (entry.index, entry.term)
            seen = self._seen.setdefault(key, (entry_digest(entry), prev_term))
            if seen != (entry_digest(entry), prev_term):
                raise Violation(
                    "log matching",
                    f"{node_id} holds entry {entry.index}/{entry.term} with "
                    f"{'other data' if seen[0] != entry_digest(entry) else 'another prefix'} "
                    f"(previous term {prev_term}, first seen with {seen[1]})",
                )
            prev_term = entry.term
        new_terms = {e.index: e.term for e in write.entries}
        for old in done.replaced:
            committed = self.committed.get(old.index)
            kept = new_terms.get(old.index) == old.term
            if committed is not None and committed.term == old.term and not kept:
                raise Violation(
                    "committed entry lost",
                    f"{node_id} dropped committed entry {old.index}/{old.term} from its log",
                )

    # --- commitment -----------------------------------------------------------------------------
    def on_committed(self, node_id: str, term: int, entries: tuple[Entry, ...]) -> None:
        """``node_id``, in ``term``, hands ``entries`` to its state machine."""
        for entry in entries:
            known = self.committed.get(entry.index)
            if known is None:
                assert entry.index == self.commit_index + 1, (entry.index, self.commit_index)
                self.committed[entry.index] = CommittedEntry(
                    entry.term, entry_digest(entry), node_id, term
                )
                self.commit_index = entry.index
                continue
            known.commit_term = min(known.commit_term, term)
            if (known.term, known.digest) != (entry.term, entry_digest(entry)):
                raise Violation(
                    "committed entry changed",
                    f"{node_id} commits {entry.index}/{entry.term}, but {known.node} committed "
                    f"{entry.index}/{known.term}"
                    + (" with other data" if known.term == entry.term else ""),
                )
