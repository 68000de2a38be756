"""Delivery receipts as clients see them: an opaque token naming one delivery of a message.

The state machine counts each message's deliveries (doq/state/layout.py, ``MessageRecord``); a
receipt is the message ID and that count, written ``<id>.<delivery>``. Clients treat it as opaque:
they get it with a dequeue and hand it back with ack, nack or touch, and the state machine refuses
the operation (409) when that delivery is over, so a consumer whose lease expired cannot ack a
message out from under the consumer that holds it now (docs/compatibility.md).

Framework-free, like the serve decision (doq/api/serving.py): every front reads receipts here.
"""

from __future__ import annotations

from doq.api.errors import validation_problem
from doq.commands import U64_MAX
from doq.state.results import Message

RECEIPT_HEADER = "X-Doq-Receipt"  # the receipt of a single-message dequeue (its body is Go's)
RECEIPT_CHARS_MAX = 41  # two u64 in decimal and the dot
_SEPARATOR = "."


def receipt_of(message: Message) -> str:
    return f"{message.id}{_SEPARATOR}{message.deliveries}"


def delivery_of(receipt: str | None, message_id: int, location: str) -> int | None:
    """The delivery a receipt names (None without one); a receipt that is not one of ours, or
    names another message, is a 422 at ``location``."""
    if receipt is None:
        return None
    named, _, delivery = receipt.partition(_SEPARATOR)
    well_formed = (
        len(receipt) <= RECEIPT_CHARS_MAX
        and named.isdigit()
        and delivery.isdigit()
        and named.isascii()
        and delivery.isascii()
    )
    if not well_formed or int(delivery) > U64_MAX:
        raise validation_problem("expected a receipt from a dequeue", location, receipt)
    if int(named) != message_id:
        raise validation_problem(
            f"the receipt is not one of message {message_id}", location, receipt
        )
    return int(delivery)
