"""The shell's half of "Stalls" (docs/raft.md): when the ticker wakes after a stall, a message
that reached the node's socket meanwhile is handed to the driver before the stall's ticks, even
though the receive loop has not run yet (docs/reliability.md, finding 2).

A real node on a real socket, on Trio's MockClock so that the stall is exact: the test plays
the leader "b" through a bare Transport, brings node "a" to one tick short of its election
timeout, puts b's heartbeat into a's socket without letting a's receive loop read it (reading
the socket's ``EVENTS`` takes the wake-up edge the loop sleeps on), then moves the clock two
ticks. The ticker must read the heartbeat first: a follows b and answers, with no pre-vote."""

from __future__ import annotations

import time

import trio
import trio.testing
import zmq

from raft_zmq.core.ready import Role
from raft_zmq.core.types import ClusterConfig, Heartbeat, HeartbeatReply, RequestVote, Server
from raft_zmq.transport import Transport

from .test_node_cluster import Member, free_port

TICK_S = 0.010
ARRIVAL_S_MAX = 10.0  # a message on 127.0.0.1 reaches the socket long before this


def wait_until_in_socket(transport: Transport) -> None:
    """Polls the ROUTER's EVENTS, without yielding to Trio, until a message is waiting."""
    sock = transport._router.zmq_socket
    deadline = time.monotonic() + ARRIVAL_S_MAX
    while not sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
        assert time.monotonic() < deadline, "the heartbeat never reached the socket"


async def test_the_ticker_hands_in_what_arrived_during_a_stall_before_its_ticks(
    tmp_path, mock_clock
):
    a_address, b_address = (f"127.0.0.1:{free_port()}" for _ in range(2))
    config = ClusterConfig(
        (Server("a", a_address), Server("b", b_address), Server("c", "127.0.0.1:1"))
    )
    a = Member(str(tmp_path), "a", a_address, tick_ms=int(TICK_S * 1000))
    async with trio.open_nursery() as nursery:
        node = await a.start(nursery, bootstrap=config)
        b = Transport("b", b_address)
        await nursery.start(b.run)
        b.set_peers({"a": a_address})
        await trio.testing.wait_all_tasks_blocked()
        core = node.core
        assert core is not None and core.role is Role.FOLLOWER
        while core.election_elapsed < core._randomized_timeout - 1:
            mock_clock.jump(TICK_S)
            await trio.testing.wait_all_tasks_blocked()
        assert core.role is Role.FOLLOWER  # one more tick and it stands

        beat = Heartbeat(core.term, "b", "a", commit=0, read_seq=1, leader_address=b_address)
        deadline = time.monotonic() + ARRIVAL_S_MAX
        while not b.send_nowait(beat):  # False until b's connection to a is up
            assert time.monotonic() < deadline, "b never connected to a"
        assert node.transport is not None
        wait_until_in_socket(node.transport)
        mock_clock.jump(2 * TICK_S)  # the stall: two ticks with the heartbeat unread
        await trio.testing.wait_all_tasks_blocked()

        assert core.role is Role.FOLLOWER and core.leader == "b"
        said: list = []
        while not any(isinstance(m, HeartbeatReply) for m in said):
            said += await b.receive_batch(100)
        assert not [m for m in said if isinstance(m, RequestVote)], said
        a.kill()
        await b.aclose()
