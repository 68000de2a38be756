"""Shared test helpers: a real single-node doq service (Raft over ZeroMQ on 127.0.0.1, LMDB
state machine) running inside the test's nursery."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import AsyncIterator

import trio

from doq.service import QueueService
from doq.state.machine import QueueStateMachine
from raft_zmq.core.types import ClusterConfig, Server
from raft_zmq.node import NodeConfig, RaftNode


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.asynccontextmanager
async def single_node_service(
    data_dir: str,
    *,
    http_address: str = "127.0.0.1:8000",
    node_id: str = "node-0",
    **service_kwargs,
) -> AsyncIterator[QueueService]:
    """A one-node cluster that has elected itself and applied its first entries."""
    state = QueueStateMachine(os.path.join(data_dir, "state"))
    address = f"127.0.0.1:{free_port()}"
    config = NodeConfig(
        node_id=node_id, raft_address=address, data_dir=os.path.join(data_dir, "raft"), tick_ms=10
    )
    raft = RaftNode(config, state, bootstrap=ClusterConfig((Server(node_id, address),)))
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(raft.run)
            with trio.fail_after(10):
                while not raft.is_leader:
                    await trio.sleep(0.005)
            service = QueueService(raft, state, http_address=http_address, **service_kwargs)
            await service.publish_own_address()
            yield service
            nursery.cancel_scope.cancel()
    finally:
        state.close()
