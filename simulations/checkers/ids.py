"""Message IDs are unique cluster-wide, across leader changes, restarts and clock steps (issue 10,
finding 8; doq/ids.py, docs/state-machine.md "IDs").

Two properties, checked as the services hand IDs out:
- **One node number, one node**: the node number field of every ID a node's generator makes
  belongs to that node alone. This is what makes IDs unique by construction: two leaders live
  at once (a deposed one that does not know it yet, and its successor) never make the same ID,
  however their clocks and sequences line up. A hashed node number breaks it for node names whose
  hash collides, whether or not the two ever make the same ID in a given run.
- **Handed out once**: no ID is handed out twice: the IDs of ``POST /API/v1/ids`` answers, and
  those the service chose for an enqueue that was answered. (IDs a client chose are its own
  business: retrying an enqueue with the same ID is how a client makes it idempotent.) The
  replicated ID floor and the reservations guarantee this across leaders even when clocks step
  back.
"""

from __future__ import annotations

from collections.abc import Iterable

from doq.ids import ID_NODE_MAX, ID_SEQUENCE_BITS
from simulations.checkers.raft_safety import Violation


def node_field(message_id: int) -> int:
    return (message_id >> ID_SEQUENCE_BITS) & ID_NODE_MAX


class IdUniqueness:
    def __init__(self) -> None:
        self._owner: dict[int, str] = {}  # node number field -> the node whose generator used it
        self._handed_out: dict[int, str] = {}  # ID -> who it was handed to (a label)
        self.generated = 0
        self.handed_out = 0

    def on_generated(self, node_id: str, ids: Iterable[int]) -> None:
        """``node_id``'s generator made ``ids`` (whether or not they are handed out)."""
        for message_id in ids:
            self.generated += 1
            number = node_field(message_id)
            owner = self._owner.setdefault(number, node_id)
            if owner != node_id:
                raise Violation(
                    "node numbers unique",
                    f"{node_id} made ID {message_id} with node number {number}, which is "
                    f"{owner}'s: two live leaders can make the same ID",
                )

    def on_handed_out(self, ids: Iterable[int], label: str) -> None:
        """A client was answered with ``ids`` (an /ids answer, or IDs the service chose)."""
        for message_id in ids:
            self.handed_out += 1
            earlier = self._handed_out.setdefault(message_id, label)
            if earlier != label:
                raise Violation(
                    "IDs handed out once",
                    f"ID {message_id} was handed out to {earlier} and again to {label}",
                )
