"""Raft's safety properties, checked as events happen (Raft paper, Figure 3).

- Election safety: at most one leader per term (checked whenever a node becomes leader).
- Log matching: an entry (index, term) has the same command and the same predecessor term in
  every log that holds it. Checked on every durable write: the first sight of (index, term)
  records its data digest and the term before it; every later sight must agree. By induction
  two logs that share an entry then share the whole prefix, which is the property itself.
- Leader completeness: a new leader's log holds every entry committed in an earlier term
  (checked at election, against every index it has not compacted away). And prospectively, at
  every commit: no node whose log lacks the newly committed entry could win an election, that
  is, its log is not at least as up to date (§5.4.1) as the durable logs of a majority. The
  durable logs, because a crash may take any voter back to them. In correct Raft this holds the
  moment an entry commits (a majority holds, durably, an entry of the committing leader's term,
  and a log without the committed entry has only older terms), and it is what makes leader
  completeness hold for every later election, so a violation is found when it is created,
  without waiting for the crashes and the election that would turn it into a lost entry.
- State machine safety: a committed entry never changes (the first node to commit an index fixes
  its term and data; every other node must commit the same), never disappears from a log that
  held it (no durable write may drop it), and every node applies the same sequence (the queue
  checker compares the results and the states the nodes reach).
A broken property raises ``Violation``, which stops the run with the seed and the last events.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Protocol

import attrs

from raft_zmq.core.configcodec import decode_config
from raft_zmq.core.raft import RaftCore
from raft_zmq.core.ready import Role, SoftState
from raft_zmq.core.types import Entry, EntryKind
from simulations.world.disk import CompletedWrite, PendingWrite, SimLog


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


class NodeLogs(Protocol):
    """A node's logs as the checker reads them: its disk (durable part), and its core (the whole
    log, unstable entries included) while it runs."""

    id: str
    disk: SimLog
    core: RaftCore | None


class RaftSafety:
    def __init__(self, nodes: Mapping[str, NodeLogs] | None = None) -> None:
        self._nodes = nodes if nodes is not None else {}
        self.leaders: dict[int, str] = {}  # term -> the node that led it
        self._seen: dict[tuple[int, int], tuple[bytes, int]] = {}  # (index, term) -> (digest, prev)
        self.committed: dict[int, CommittedEntry] = {}
        self.commit_index = 0  # every index up to here is in ``committed``
        # The voters, when they never change (None: membership changes; see _voters)
        self.static_voters: frozenset[str] | None = frozenset(self._nodes) or None
        self._config_seen_index = 1  # the newest configuration entry any node has persisted
        self._committed_config: tuple[int, frozenset[str]] | None = None  # (index, voters)

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
            if entry.kind is EntryKind.CONFIG:
                self._config_seen_index = max(self._config_seen_index, entry.index)
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
        newest = self.commit_index
        self._register(node_id, term, entries)
        if self.commit_index > newest:
            self._check_no_rival(self.commit_index)

    def _register(self, node_id: str, term: int, entries: tuple[Entry, ...]) -> None:
        for entry in entries:
            known = self.committed.get(entry.index)
            if known is None:
                assert entry.index == self.commit_index + 1, (entry.index, self.commit_index)
                self.committed[entry.index] = CommittedEntry(
                    entry.term, entry_digest(entry), node_id, term
                )
                self.commit_index = entry.index
                if entry.kind is EntryKind.CONFIG:
                    self._committed_config = (entry.index, decode_config(entry.data).voters)
                continue
            known.commit_term = min(known.commit_term, term)
            if (known.term, known.digest) != (entry.term, entry_digest(entry)):
                raise Violation(
                    "committed entry changed",
                    f"{node_id} commits {entry.index}/{entry.term}, but {known.node} committed "
                    f"{entry.index}/{known.term}"
                    + (" with other data" if known.term == entry.term else ""),
                )

    # --- prospective leader completeness ----------------------------------------------------
    def _voters(self) -> frozenset[str] | None:
        """Whose votes elect a leader now: the fixed voters, or under membership changes the
        voters of the newest committed configuration, provided no node has persisted a newer
        configuration entry (then candidates may count by different configurations, and the
        check waits until one is committed). Sound for single-server changes: the committed
        configuration's majority holds every entry committed before or under it."""
        if self.static_voters is not None:
            return self.static_voters
        committed = self._committed_config
        if committed is None or committed[0] < self._config_seen_index:
            return None
        return committed[1]

    def _check_no_rival(self, index: int) -> None:
        """No node lacking committed entry ``index`` could gather a majority of votes. Checking
        the newest committed entry covers the older ones: a log holding it holds them all."""
        voters = self._voters()
        if voters is None:
            return  # a configuration change is under way: which majority a rival needs depends
            # on the configuration it holds; checked again once the change is committed
        term = self.committed[index].term
        durable_last = {v: _last(self._nodes[v].disk) for v in voters}
        majority = len(voters) // 2 + 1
        for node in (self._nodes[v] for v in sorted(voters)):
            views = [("durable", node.disk, _last(node.disk))]
            if node.core is not None:
                log = node.core.log
                views.append(("current", node.core, (log.last_term(), log.last_index())))
            for name, view, last in views:
                if _holds(view, index, term):
                    continue
                votes = 1 + sum(
                    1
                    for other, theirs in durable_last.items()
                    if other != node.id and last >= theirs
                )
                if votes >= majority:
                    raise Violation(
                        "leader completeness",
                        f"entry {index}/{term} is committed, yet {node.id}, whose {name} log "
                        f"lacks it (last entry {last[1]}/{last[0]}), is at least as up to date "
                        f"as the durable logs of {votes} of {len(voters)} voters: it could be "
                        "elected and overwrite it",
                    )


def _last(disk: SimLog) -> tuple[int, int]:
    """(last term, last index) of a durable log, the order of the up-to-date check."""
    return (disk.term(disk.last_index()), disk.last_index())


def _holds(view: SimLog | RaftCore, index: int, term: int) -> bool:
    if isinstance(view, SimLog):
        if index <= view.snapshot.index:
            return True  # compacted: a snapshot holds only committed entries
        return index <= view.last_index() and view.term(index) == term
    log = view.log
    if index < log.first_index():
        return True
    return log.term(index) == term
