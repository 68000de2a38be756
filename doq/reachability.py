"""Whether anything listens at a member's Raft address: the check behind a join that moves an
existing member to another address (doq/service.py ``join``).

A join of an existing id with another address used to rewrite that member's Raft address, even
the leader's own, to wherever the request said, with nothing listening there. It is now refused
unless the operator asks for the move explicitly *and* nothing answers at the member's current
address: a TCP connection refused or not made within the timeout. A process that accepts the
connection is taken as the member, alive; better a refused move than a live member cut off.
"""

from __future__ import annotations

import trio

REACH_TIMEOUT_S = 1.0


async def answers_at(address: str, timeout_s: float = REACH_TIMEOUT_S) -> bool:
    """Whether a TCP connection to ``host:port`` is accepted within ``timeout_s``."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return False
    with trio.move_on_after(timeout_s):
        try:
            stream = await trio.open_tcp_stream(host.strip("[]"), int(port))
        except OSError:
            return False
        await stream.aclose()
        return True
    return False
