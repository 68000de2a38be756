"""The state's part in making message IDs unique by construction (doq/ids.py): node numbers
assigned through the log, and the ID floor raised ahead of the IDs a leader hands out.

Why it exists: a node number derived from the node ID (a hash) can collide, and an ID handed out
by ``POST /API/v1/ids`` is stored nowhere, so a later leader (or this one, restarted with its clock
stepped back) could hand it out again. Both facts live in the replicated state instead, decided
by commands every replica applies alike:

- ``AssignNodeNumber``: the lowest number never assigned before (numbers are never reused, so the
  count of assignments is the next one), kept in the ``node_numbers`` database;
- ``ReserveIds``: the ID floor rises to the reserved ID; a new leader starts above the floor.

When all ``ID_NODE_MAX + 1`` numbers are assigned, ``AssignNodeNumber`` is refused (CONFLICT): the
node asking gets no number and its service refuses to hand out IDs (doq/service.py), with a clear
error and a log line, never an assertion.

``PLANT_NODE_NUMBER_BY_HASH`` puts finding 8 back for the simulator only (simulations/plants.py):
the number is the node ID's crc32, as before the fix, so two node IDs can share one. Production
never passes it (``QueueStateMachine(plants=...)`` defaults to none).

A ``RestoreState`` keeps the node numbers of the running cluster (``carried_over`` /
``put_back``): they belong to its members, not to the queue data of a backup, which may come from
another cluster whose numbers would collide with these.
"""

from __future__ import annotations

import zlib

import lmdb

from doq.commands import AssignNodeNumber, ReserveIds
from doq.ids import ID_NODE_MAX
from doq.state.batch import Dbs, WriteBatch
from doq.state.layout import U16
from doq.state.results import IdsReserved, NodeNumberAssigned, RejectCode, Rejected, Result

PLANT_NODE_NUMBER_BY_HASH = "node_number_by_hash"


def node_number(txn: lmdb.Transaction, dbs: Dbs, node_id: str) -> int | None:
    raw = txn.get(node_id.encode(), db=dbs.node_numbers)
    return None if raw is None else int(U16.unpack(raw)[0])


def assign_node_number(b: WriteBatch, cmd: AssignNodeNumber, _clock: object) -> Result:
    existing = node_number(b.txn, b.dbs, cmd.node_id)
    if existing is not None:
        return NodeNumberAssigned(cmd.node_id, existing)
    number = b.txn.stat(b.dbs.node_numbers)["entries"]  # never deleted: the count is the next one
    if number > ID_NODE_MAX:
        return Rejected(
            RejectCode.CONFLICT, f"all {ID_NODE_MAX + 1} node numbers of message IDs are assigned"
        )
    b.txn.put(cmd.node_id.encode(), U16.pack(number), db=b.dbs.node_numbers)
    return NodeNumberAssigned(cmd.node_id, number)


def assign_node_number_by_hash(b: WriteBatch, cmd: AssignNodeNumber) -> Result:
    """The planted bug (``PLANT_NODE_NUMBER_BY_HASH``): the number hashed from the node ID, as
    doq did before issue 10's finding 8; ``node-9`` and ``node-16`` get the same one."""
    number = zlib.crc32(cmd.node_id.encode()) & ID_NODE_MAX
    b.txn.put(cmd.node_id.encode(), U16.pack(number), db=b.dbs.node_numbers)
    return NodeNumberAssigned(cmd.node_id, number)


def reserve_ids(b: WriteBatch, cmd: ReserveIds, _clock: object) -> Result:
    b.meta.id_floor = max(b.meta.id_floor, cmd.upto)
    return IdsReserved(b.meta.id_floor)


def carried_over(txn: lmdb.Transaction, dbs: Dbs) -> list[tuple[bytes, bytes]]:
    """The node numbers to keep across a restore."""
    return [(bytes(key), bytes(value)) for key, value in txn.cursor(dbs.node_numbers)]


def put_back(txn: lmdb.Transaction, dbs: Dbs, numbers: list[tuple[bytes, bytes]]) -> None:
    """After a restore: the running cluster's node numbers, whatever the backup held."""
    txn.drop(dbs.node_numbers, delete=False)
    for key, value in numbers:
        txn.put(key, value, db=dbs.node_numbers, append=True)
