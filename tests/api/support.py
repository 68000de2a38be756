"""Helpers for the API tests: the real app on a real one-node service (Quart's test client), and
clusters whose apps are served by Hypercorn on 127.0.0.1 so that forwarding goes over real HTTP."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs
import hypercorn.trio
import trio
from hypercorn.config import Config as HypercornConfig

from doq.api import ApiSettings, create_app
from doq.membership import encode_metadata
from doq.peerclock import probe_peer_clocks
from doq.service import QueueService
from doq.state.machine import QueueStateMachine
from raft_zmq.core.types import ClusterConfig, Server
from raft_zmq.node import NodeConfig, RaftNode

from ..support import free_port, single_node_service

STARTUP_TIMEOUT_S = 20


class Defaults:
    """ApiSettings the helpers use unless a test says otherwise; the ``fast_path`` fixture
    (conftest.py) sets ``fast_path`` so that a module's tests run with the fast path on and off."""

    settings: dict[str, Any] = {}


def api_settings(node_id: str, **settings: Any) -> ApiSettings:
    return ApiSettings(node_id=node_id, **{**Defaults.settings, **settings})


@attrs.define
class ApiHarness:
    service: Any
    app: Any
    client: Any


@contextlib.asynccontextmanager
async def api_app(
    data_dir: str,
    *,
    service_wrapper: Any = None,
    service_kwargs: dict[str, Any] | None = None,
    **settings: Any,
) -> AsyncIterator[ApiHarness]:
    """The app on a real one-node service, with Quart's test client. ``service_wrapper`` wraps
    the service (to inject failures) before the app sees it; ``service_kwargs`` go to
    ``QueueService``."""
    async with single_node_service(data_dir, **(service_kwargs or {})) as service:
        served = service_wrapper(service) if service_wrapper else service
        app = create_app(served, api_settings("node-0", **settings))
        async with app.test_app():
            yield ApiHarness(served, app, app.test_client())


@attrs.define
class ServedNode:
    node_id: str
    service: QueueService
    http_address: str
    stop_http: trio.Event
    app: Any = None

    @property
    def url(self) -> str:
        return f"http://{self.http_address}"


async def serve_app(
    app: Any, address: str, stop: trio.Event, *, task_status: Any = trio.TASK_STATUS_IGNORED
) -> None:
    config = HypercornConfig()
    config.bind = [address]
    config.graceful_timeout = 1
    config.accesslog = None
    config.errorlog = None
    await hypercorn.trio.serve(app, config, shutdown_trigger=stop.wait, task_status=task_status)


@contextlib.asynccontextmanager
async def served_cluster(
    data_dir: str,
    *,
    size: int = 3,
    service_wrapper: Any = None,
    service_kwargs_of: Callable[[str], dict[str, Any]] | None = None,
    **settings: Any,
) -> AsyncIterator[list[ServedNode]]:
    """``size`` nodes bootstrapped together (each one's HTTP address in the configuration), each
    app served by Hypercorn on 127.0.0.1, each probing its peers' clocks as a node does;
    yields once a leader is elected. ``service_kwargs_of(node_id)``: more ``QueueService``
    arguments for that node (an injected clock, say)."""
    ids = [f"node-{i}" for i in range(size)]
    raft_addresses = [f"127.0.0.1:{free_port()}" for _ in ids]
    http_addresses = [f"127.0.0.1:{free_port()}" for _ in ids]
    config = ClusterConfig(
        tuple(
            Server(node_id, raft, metadata=encode_metadata(http))
            for node_id, raft, http in zip(ids, raft_addresses, http_addresses)
        )
    )
    states = [QueueStateMachine(os.path.join(data_dir, node_id, "state")) for node_id in ids]
    try:
        async with trio.open_nursery() as nursery:
            nodes = []
            for node_id, raft_address, http, state in zip(
                ids, raft_addresses, http_addresses, states
            ):
                raft_config = NodeConfig(
                    node_id=node_id,
                    raft_address=raft_address,
                    data_dir=os.path.join(data_dir, node_id, "raft"),
                    tick_ms=10,
                )
                raft = RaftNode(raft_config, state, bootstrap=config)
                await nursery.start(raft.run)
                extra = service_kwargs_of(node_id) if service_kwargs_of else {}
                service = QueueService(raft, state, http_address=http, **extra)
                served = service_wrapper(service) if service_wrapper else service
                app = create_app(served, api_settings(node_id, **settings))
                stop = trio.Event()
                await nursery.start(serve_app, app, http, stop)
                nursery.start_soon(probe_peer_clocks, service)
                nodes.append(ServedNode(node_id, service, http, stop, app))
            with trio.fail_after(STARTUP_TIMEOUT_S):
                while not any(node.service.raft.is_leader for node in nodes):
                    await trio.sleep(0.01)
            yield nodes
            for node in nodes:
                node.stop_http.set()
            nursery.cancel_scope.cancel()
    finally:
        for state in states:
            state.close()


def leader_of(nodes: list[ServedNode]) -> ServedNode:
    return next(node for node in nodes if node.service.raft.is_leader)


def followers_of(nodes: list[ServedNode]) -> list[ServedNode]:
    return [node for node in nodes if not node.service.raft.is_leader]
