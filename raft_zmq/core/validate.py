"""Structural checks of a peer's message, made before the core acts on it.

The wire codec (raft_zmq/codec.py) makes the same checks on bytes; they are repeated here for
in-memory transports (the simulator, tests). A message that fails one is dropped and counted by
the reason returned, never asserted on: bad input from a peer must not stop a node.
"""

from __future__ import annotations

from raft_zmq.core.types import AppendEntries, Message, NodeId


def problem(m: Message, me: NodeId) -> str | None:
    """Why ``m`` cannot be handled by node ``me``, or None when it can."""
    if m.to != me:
        return "misdirected"
    if m.sender == me:
        return "from_self"
    if m.term < 0:
        return "negative_term"
    if isinstance(m, AppendEntries):
        if m.prev_index < 0 or m.prev_term < 0 or m.commit < 0:
            return "negative_index"
        expected = m.prev_index + 1
        previous_term = m.prev_term
        for entry in m.entries:
            if entry.index != expected or not previous_term <= entry.term <= m.term:
                return "malformed_entries"
            expected += 1
            previous_term = entry.term
    return None
