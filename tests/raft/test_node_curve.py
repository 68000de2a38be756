"""Real nodes on 127.0.0.1 with a cluster key (raft_zmq/curve.py): a voter whose key is wrong is
named in the configuration, yet it cannot vote, be elected or receive entries; the two members
holding the key elect a leader and commit without it, and their transports count its refusals."""

from __future__ import annotations

import trio

from raft_zmq.curve import ClusterKey

from .kvsm import set_command
from .test_node_cluster import DEADLINE_S, Member, three_members, wait_for_leader

KEY = ClusterKey.generate()


async def test_a_voter_with_the_wrong_key_cannot_vote_lead_or_append(tmp_path):
    members, config = three_members(str(tmp_path), cluster_key=KEY)
    intruder_old = members[2]
    intruder = Member(
        str(tmp_path), intruder_old.id, intruder_old.address, cluster_key=ClusterKey.generate()
    )
    members[2] = intruder
    with trio.fail_after(DEADLINE_S):
        async with trio.open_nursery() as nursery:
            for m in members:
                await m.start(nursery, config)
            leader = await wait_for_leader(members[:2])
            for i in range(20):
                await leader.node.propose(set_command(f"k{i}", "v"))
            # Each of the intruder's election timeouts (150 to 300 ms here) sends a (pre-)vote
            # request to both members; none can leave, for want of a connection (refusals are not
            # a clock: the monitor reports only the first few, docs/transport.md).
            while intruder.node.transport.stats().dropped_unreachable < 8:
                await trio.sleep(0.01)
            for member in members[:2]:
                assert member.node.transport.stats().refused_handshake >= 1
            assert not intruder.node.is_leader and intruder.node.leader_id is None
            # Its log holds only the bootstrap configuration: nothing was appended to it.
            assert intruder.node.core.log.last_index() == 1
            assert leader.node.core.log.committed > 20
            assert leader.node.is_leader  # undisturbed: nothing of the intruder's arrived
            assert intruder.node.transport.stats().refused_handshake > 0  # ours refused too
            assert intruder.node.transport.stats().received == 0
            nursery.cancel_scope.cancel()
