"""Linearizability of the client history, one queue at a time (a queue's operations touch only
that queue, so the history splits per queue and each part is checked alone).

The search is Wing and Gong's, with Lowe's memoization: take the operations in invocation order;
an operation may be linearized next if no other pending operation returned before it was
invoked; try each such operation against the sequential model
(simulations/checkers/model.py), keep the
model states whose result matches what the client saw, and backtrack. A pair (set of operations
linearized, model state) already explored is never explored again, which turns the exponential
search into one that is usually linear in the history. Operations whose outcome is unknown
(see simulations/checkers/history.py) have no return time and any result: they may be
linearized at any point
after their invocation, or never.

Three refinements keep a real soak's queues (about 170 operations, a dozen of them unknown,
twenty leases held) from running for minutes or giving up; none changes a verdict:
- Order. The candidates are tried the operation that returned first first, the unknown ones
  last (an unknown dequeue, in the second of the first passes below, as if it returned when
  invoked),
  and for each the fewest expired leases first. Order decides only which pairs are
  explored first, never which are reachable; the search stops early only on success, and a
  success is a path of model transitions that respects every real-time constraint, so it is a
  linearization whatever the order. A linearizable history is then mostly found along the first
  path, where the invocation order put it thousands of states deep.
- Dominance (only when the history has no ``final`` operation). Two pairs with the same
  operations linearized and the same state but for the in-flight leases, where those of the
  second are a proper suffix of those of the first (more leases expired, in deadline order):
  whatever the second can do, the first can. Every operation that expires leases (dequeue, ack,
  nack, touch, update-priority) may first expire any prefix of the in-flight ones, so the first
  pair expiring k more reaches exactly the second's next state, result and all; every other
  operation (create, enqueue, info, delete, restore) neither reads nor changes the in-flight
  order, so both pairs take the same step and stay in the same relation. Success depends on the
  operations linearized only. So the second pair is skipped once the first was explored (the
  first is explored first: fewest expiries first). A ``final`` operation reads the in-flight
  flags without expiring anything, so it could tell them apart: with one, pairs are compared
  exactly.
- First passes. Unknown operations on a message that no operation that returned saw (delivered,
  acked, nacked, touched, re-prioritized), in a soak enqueues that timed out and never took
  effect, are first left out, as if they never happened (which they may): twice, once with the
  unknown dequeues tried late and once early, each on half the budget. Any order a pass finds
  is an order of the whole history (the left out operations in the "never" case), so its
  success is a success; when neither finds one, the full search runs, with the whole budget,
  and its verdict is the verdict (so a violation costs up to two searches' budgets). Without
  them the search explores every subset of those operations before backtracking past them.

The search gives up (inconclusive, reported apart from violations) after ``SEARCH_STATES_MAX``
states rather than run for ever.
"""

from __future__ import annotations

from typing import Any

import attrs

from doq.state.results import (
    Acked,
    Dequeued,
    Enqueued,
    Nacked,
    PriorityUpdated,
    QueueCreated,
    QueueDeleted,
    QueueInfo,
    Rejected,
    StateRestored,
    Touched,
)
from simulations.checkers.model import INITIAL, RESTORED, Call, QueueKind, State, transitions

SEARCH_STATES_MAX = 400_000
FIRST_PASS_STATES_DIVISOR = 2  # each first pass may explore half the states the search may
_NEVER_US = 1 << 62  # the return time of an operation that may never have returned


@attrs.frozen
class HistoryOp:
    call_us: int
    return_us: int | None  # None: the outcome is unknown (it may not have happened at all)
    call: Call
    key: tuple | None  # the result the client saw, None when unknown
    label: str  # for reports: who asked what


@attrs.frozen
class SearchResult:
    ok: bool
    inconclusive: bool
    states: int
    detail: str = ""


def result_key(result: Any) -> tuple:
    """A result as the model spells it (what a client sees, minus what the model leaves open)."""
    if isinstance(result, Rejected):
        return ("rejected", result.code.value)
    if isinstance(result, QueueCreated):
        return ("created", result.created)
    if isinstance(result, Enqueued):
        (message,) = result.messages
        return ("enqueued", message.id, message.content)
    if isinstance(result, Dequeued):
        (message,) = result.messages
        return ("dequeued", message.id, message.content, message.priority, message.group)
    if isinstance(result, Acked):
        return ("acked", result.id)
    if isinstance(result, Nacked):
        return ("nacked", result.id, result.priority)
    if isinstance(result, Touched):
        return ("touched", result.id)
    if isinstance(result, PriorityUpdated):
        return ("priority", result.id, result.priority)
    if isinstance(result, QueueDeleted):
        return ("deleted", result.messages_removed)
    if isinstance(result, QueueInfo):
        return ("info", result.total, result.enqueued_total, result.acked_total)
    if isinstance(result, StateRestored):
        return RESTORED
    raise AssertionError(f"no model key for {result!r}")


def check(
    kind: QueueKind, ops: list[HistoryOp], states_max: int = SEARCH_STATES_MAX
) -> SearchResult:
    ops = sorted(ops, key=lambda op: op.call_us)
    for op in ops:
        assert op.return_us is None or op.return_us >= op.call_us, op
    unseen = _unseen_unknowns(ops)
    states = 0
    if unseen:  # first the likely explanations: those never happened (see the module docstring)
        for early in (False, True):
            tries = _try_order(ops, unseen, early)
            first = _search(kind, ops, tries, unseen, states_max // FIRST_PASS_STATES_DIVISOR)
            if first.ok:
                return attrs.evolve(first, states=states + first.states)
            states += first.states
    full = _search(kind, ops, _try_order(ops, unseen, False), 0, states_max)
    return attrs.evolve(full, states=states + full.states)


def _search(
    kind: QueueKind, ops: list[HistoryOp], tries: list[tuple], skipped: int, states_max: int
) -> SearchResult:
    """The search over ``ops`` (sorted by invocation) but those in the bit set ``skipped``,
    which are left out as if they never happened (only operations whose outcome is unknown)."""
    n = len(ops)
    calls = [op.call_us for op in ops]
    returns = [_NEVER_US if op.return_us is None else op.return_us for op in ops]
    required = sum(1 << i for i, op in enumerate(ops) if op.return_us is not None)
    assert not required & skipped
    visited = _Visited(dominance=all(op.call.kind != "final" for op in ops))
    stack: list[tuple[int, State]] = [(skipped, INITIAL)]
    deepest = (-1, skipped, INITIAL)
    while stack:
        done, state = stack.pop()
        if done & required == required:
            return SearchResult(True, False, len(visited))
        if not visited.add(done, state):
            continue
        if len(visited) > states_max:
            return SearchResult(False, True, len(visited), f"gave up after {states_max} states")
        depth = (done & required).bit_count()
        if depth > deepest[0]:
            deepest = (depth, done, state)
        candidates = sorted(_candidates(done, calls, returns, n), key=tries.__getitem__)
        stack.extend(_successors(kind, ops, done, state, candidates))
    return SearchResult(False, False, len(visited), _explain(kind, ops, deepest, calls, returns))


def _unseen_unknowns(ops: list[HistoryOp]) -> int:
    """The operations whose outcome is unknown and that address a message no operation that
    returned saw delivered, acked, nacked, touched or re-prioritized, as a bit set."""
    seen = {op.key[1] for op in ops if op.key and op.key[0] in _SEES_MESSAGE}
    unseen = 0
    for i, op in enumerate(ops):
        if op.return_us is None and op.call.kind in _ADDRESSES_MESSAGE and op.call.id not in seen:
            unseen |= 1 << i
    return unseen


_SEES_MESSAGE = frozenset({"dequeued", "acked", "nacked", "touched", "priority"})
_ADDRESSES_MESSAGE = frozenset({"enqueue", "ack", "nack", "touch", "update_priority"})


class _Visited:
    """The pairs (operations linearized, model state) explored, and with ``dominance`` those
    they dominate: the same pair but for a proper suffix of the in-flight messages (more leases
    expired; see the module docstring for why such a pair has nothing to add). The in-flight
    tuples of one (operations, rest of the state) are kept as a trie of their reversals, so
    that "a suffix of one explored" is a walk from the root."""

    def __init__(self, dominance: bool) -> None:
        self.dominance = dominance
        self.tries: dict[tuple, dict] = {}
        self.count = 0

    def __len__(self) -> int:
        return self.count

    def add(self, done: int, state: State) -> bool:
        """Record the pair; False when it (or with dominance a pair dominating it) was seen."""
        exists, messages, in_flight, enqueued, acked = state
        rest = (done, exists, messages, enqueued, acked)
        node = self.tries.get(rest)
        new = node is None
        if node is None:
            node = self.tries[rest] = {}
        for message_id in reversed(in_flight):
            child = node.get(message_id)
            if child is None:
                new = True
                child = node[message_id] = {}
            node = child
        if not self.dominance and _END not in node:
            new = True
            node[_END] = {}
        self.count += new
        return new


_END = None  # marks where an explored in-flight tuple ends in a trie (never a message ID)


def _try_order(ops: list[HistoryOp], unseen: int, early: bool) -> list[tuple]:
    """Per operation, a sort key: which candidate the search tries first (the smallest). First
    the operations that returned, the one that returned first first; then those whose outcome is
    unknown, those in ``unseen`` (see ``_unseen_unknowns``) last, in invocation order. An
    unknown dequeue either is tried as if it had returned when it was invoked (``early``: it
    took effect, at once) or with the unseen ones, last (it most likely did not): each explains
    histories the other takes long to."""
    order: list[tuple] = []
    for i, op in enumerate(ops):
        if op.return_us is not None:
            order.append((0, op.return_us, i))
        elif op.call.kind == "dequeue":
            order.append((0, op.call_us, i) if early else (2, i, i))
        else:
            order.append((2 if unseen >> i & 1 else 1, i, i))
    return order


def _successors(
    kind: QueueKind, ops: list[HistoryOp], done: int, state: State, candidates: list[int]
) -> list[tuple[int, State]]:
    """The pairs one step on, in the order to push them on the stack (the last is tried first):
    the candidates in ``_try_order`` and, for each, the fewest expiries first (``transitions``
    lists them from none to all)."""
    out = []
    for i in reversed(candidates):
        op = ops[i]
        after_done = done | 1 << i
        step = [s for key, s in transitions(kind, state, op.call) if op.key in (None, key)]
        out.extend((after_done, s) for s in reversed(step))
    return out


def _candidates(done: int, calls: list[int], returns: list[int], n: int) -> list[int]:
    """The operations that may be linearized next: not yet linearized, and invoked no later than
    every other pending operation's return (calls are sorted, so the scan stops early)."""
    first_return = _NEVER_US
    found = []
    i = (~done & (done + 1)).bit_length() - 1  # the lowest operation not yet linearized
    while i < n:
        if not done >> i & 1:
            if calls[i] > first_return:
                break
            found.append(i)
            first_return = min(first_return, returns[i])
        i += 1
    return [i for i in found if calls[i] <= first_return]


def _explain(
    kind: QueueKind,
    ops: list[HistoryOp],
    deepest: tuple[int, int, State],
    calls: list[int],
    returns: list[int],
) -> str:
    depth, done, state = deepest
    lines = [f"after {depth} operations no order explains the next ones; the model's state:"]
    lines.append(f"  {state}")
    for i in _candidates(done, calls, returns, len(ops))[:6]:
        op = ops[i]
        allowed = sorted({repr(key) for key, _ in transitions(kind, state, op.call)})[:4]
        window = f"{op.call_us / 1e6:.6f}-" + (
            "?" if op.return_us is None else f"{op.return_us / 1e6:.6f}"
        )
        lines.append(f"  {op.label} [{window}] saw {op.key}; the model allows {', '.join(allowed)}")
    return "\n".join(lines)
