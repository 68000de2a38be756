"""Where this node's peers listen: the servers of its configuration, and a bounded table of
return routes learnt from heartbeats (a joining server, empty log, has no configuration yet and
would not know where to send its answers; docs/raft.md, "Membership")."""

from __future__ import annotations

from raft_zmq.core.types import ClusterConfig, NodeId
from raft_zmq.driver.limits import LEARNED_PEERS_MAX


class Routes:
    def __init__(self, me: NodeId) -> None:
        self._me = me
        self._config_peers: dict[NodeId, str] = {}
        self._learned: dict[NodeId, str] = {}

    def all(self) -> dict[NodeId, str]:
        return {**self._learned, **self._config_peers}

    def config_peers(self) -> dict[NodeId, str]:
        return dict(self._config_peers)

    def on_config(self, config: ClusterConfig) -> None:
        old, self._config_peers = (
            self._config_peers,
            {s.id: s.address for s in config.servers if s.id != self._me},
        )
        for peer in list(self._learned):
            if peer in self._config_peers:
                del self._learned[peer]
        for peer, address in old.items():
            # A server that left (a leader removing itself is still leading until the removal
            # commits) stays reachable for a while rather than losing its answers.
            if peer not in self._config_peers:
                self._remember(peer, address)

    def learn(self, leader: NodeId, address: str) -> bool:
        """A heartbeat from ``leader`` at ``address``; returns whether the routes changed."""
        if leader in self._config_peers or self._learned.get(leader) == address:
            return False
        self._remember(leader, address)
        return True

    def _remember(self, peer: NodeId, address: str) -> None:
        self._learned.pop(peer, None)
        self._learned[peer] = address
        while len(self._learned) > LEARNED_PEERS_MAX:
            del self._learned[next(iter(self._learned))]
