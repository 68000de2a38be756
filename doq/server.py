"""One doq node: the Raft node, Hypercorn serving the API, and the background work, in one nursery.

Start-up: open the queue state (LMDB) and the Raft node; a brand-new node without
``--cluster.join_addr`` bootstraps a cluster of itself; then serve HTTP; then the membership
keeper makes sure the cluster's configuration lists this node as a voter at its current Raft and
HTTP addresses (joining through ``--cluster.join_addr`` or through the leader, with backoff, until
it is so; a restarted member finds itself already listed and does nothing). The expirer
(doq/expiry.py) returns expired in-flight messages to ready while this node leads.

On Kubernetes (doq/kubernetes, docs/kubernetes.md) the discovery decides whether this node
bootstraps and finds the leader to join through; the leader endpoint publishes the leader as the
client Service's endpoint.

Shutdown (SIGTERM, SIGINT, or ``DoqNode.stop()``): stop accepting connections and answer the
requests in flight (Hypercorn's graceful shutdown), hand leadership over if this node leads, then
stop Raft (sockets closed, log durable) and close the state. Nothing committed is lost: every
acknowledged write was durable on a majority before it was acknowledged.
"""

from __future__ import annotations

import functools
import logging
import os
import random
from typing import TYPE_CHECKING, Any

import httpx
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve

from doq import repair, security
from doq.api import ApiSettings, create_app
from doq.config import Settings
from doq.diskguard import DiskGuard
from doq.expiry import Expirer
from doq.keys import cluster_key
from doq.membership import http_address
from doq.peerclock import probe_peer_clocks
from doq.quotas import Quotas
from doq.service import QueueService, ServiceError
from doq.state.machine import QueueStateMachine
from raft_zmq.core.ready import NotLeader
from raft_zmq.core.types import ClusterConfig, Server, Suffrage
from raft_zmq.node import NodeConfig, NodeStopped, RaftNode

if TYPE_CHECKING:
    from doq.kubernetes.discovery import Discovery
    from doq.kubernetes.endpoint import LeaderEndpoint

logger = logging.getLogger("doq.server")

GRACEFUL_SHUTDOWN_S = 5.0  # in-flight requests get this long to finish
LEADERSHIP_HANDOVER_S = 3.0  # a leader shutting down waits this long for a successor
MEMBERSHIP_CHECK_S = 1.0  # how often the keeper checks the configuration when all is well
JOIN_BACKOFF_S_MIN = 0.2
JOIN_BACKOFF_S_MAX = 5.0
JOIN_REQUEST_TIMEOUT_S = 60.0  # catching up a large state takes a while
ENDPOINT_WITHDRAW_S = 2.0  # a leader endpoint's last withdrawal at shutdown


class DoqNode:
    def __init__(
        self,
        settings: Settings,
        *,
        discovery: Discovery | None = None,
        leader_endpoint: LeaderEndpoint | None = None,
    ) -> None:
        self.settings = settings
        self.discovery = discovery
        self.leader_endpoint = leader_endpoint
        self.raft: RaftNode | None = None
        self.service: QueueService | None = None
        self.http_port: int | None = None  # the port actually bound (settings may say 0)
        self._shutdown = trio.Event()
        self._http_scope = trio.CancelScope()
        self.grpc_port: int | None = None  # the gRPC port bound, when --grpc.address is given
        self._grpc_scope = trio.CancelScope()
        self._app: _InFlight | None = None

    def stop(self) -> None:
        """Begin a graceful shutdown (safe to call more than once)."""
        self._shutdown.set()

    @property
    def requests_in_flight(self) -> int:
        """HTTP requests being handled now."""
        return self._app.count if self._app is not None else 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        s = self.settings
        os.makedirs(s.node_dir, exist_ok=True)
        state = QueueStateMachine(
            os.path.join(s.node_dir, "state"),
            apply_sync=s.storage__state_sync,
            boot_id_path=s.storage__boot_id_file,
        )
        try:
            bootstrap = self._bootstrap_config()
            if self.discovery is not None and not await self.discovery.should_bootstrap():
                bootstrap = None
            raft = RaftNode(self._raft_config(), state, bootstrap=bootstrap)
            self.raft = raft
            async with trio.open_nursery() as nursery:
                await nursery.start(raft.run)
                self.service = QueueService(
                    raft,
                    state,
                    http_address=s.advertised_http,
                    default_ack_timeout_s=s.queue__default_acknowledgement_timeout,
                    disk=DiskGuard(s.node_dir, s.storage__reserve_bytes),
                    quotas=Quotas(s.queue__queues_max, s.queue__messages_per_queue_max),
                )
                api_app = create_app(self.service, self._api_settings())
                app = self._app = _InFlight(api_app)
                http_done = trio.Event()
                bound: list[str] = await nursery.start(self._serve_http, app, http_done)
                self.http_port = int(bound[0].rsplit(":", 1)[1])
                grpc_done = trio.Event()
                if s.grpc__address:
                    self.grpc_port = await nursery.start(self._serve_grpc, app, grpc_done)
                else:
                    grpc_done.set()
                nursery.start_soon(self._keep_membership)
                nursery.start_soon(
                    functools.partial(
                        probe_peer_clocks,
                        self.service,
                        tls=security.peer_tls(s),
                        scheme=security.http_scheme(s),
                    )
                )
                if self.leader_endpoint is not None:
                    nursery.start_soon(self.leader_endpoint.run, lambda: raft.is_leader)
                nursery.start_soon(Expirer(self.service).run)
                logger.info(
                    "serving HTTP on %s, Raft on %s (data in %s)",
                    bound[0],
                    raft.address,
                    s.node_dir,
                )
                task_status.started()
                await self._shutdown.wait()
                api_app.doq.waits.close()  # waiting dequeues end now (503, nothing taken)
                self._grpc_scope.cancel()  # its calls in flight get the server's stop grace
                await grpc_done.wait()
                # Hypercorn now refuses new connections; the requests in flight finish (Raft
                # keeps running meanwhile, so their writes complete). Idle keep-alive
                # connections would hold Hypercorn for its whole graceful timeout, so once
                # nothing is in flight the server is stopped outright.
                with trio.move_on_after(GRACEFUL_SHUTDOWN_S):
                    await app.wait_idle()
                self._http_scope.cancel()
                await http_done.wait()
                await self._hand_over_leadership()
                if self.leader_endpoint is not None:
                    with trio.move_on_after(ENDPOINT_WITHDRAW_S):
                        await self.leader_endpoint.withdraw()
                nursery.cancel_scope.cancel()
        finally:
            if self.raft is not None and self.raft.core is not None and self._listed_as_wanted():
                # The membership keeper checks this only now and then; a node stopped right after
                # it became a voter again must not find itself refused at its next start.
                repair.clear_rejoin_marker(s.node_dir)
            state.close()
            logger.info("stopped")

    # --- pieces --------------------------------------------------------------------------------
    def _raft_config(self) -> NodeConfig:
        s = self.settings
        return NodeConfig(
            node_id=s.cluster__node_id,
            raft_address=s.raft__address,
            data_dir=os.path.join(s.node_dir, "raft"),
            tick_ms=s.raft__tick_ms,
            election_timeout_ticks=s.raft__election_timeout_ticks,
            heartbeat_interval_ticks=s.raft__heartbeat_ticks,
            snapshot_interval_entries=s.raft__snapshot_interval_entries,
            faults_file=s.raft__faults_file or None,
            cluster_key=cluster_key(s),
        )

    def _bootstrap_config(self) -> ClusterConfig | None:
        """A node told to join never bootstraps; otherwise a brand-new node starts a cluster of
        itself (the driver ignores this when the log already holds anything)."""
        s = self.settings
        if s.cluster__join_addr:
            return None
        return ClusterConfig((Server(s.cluster__node_id, s.raft__address),))

    def _api_settings(self) -> ApiSettings:
        s = self.settings
        return ApiSettings(
            node_id=s.cluster__node_id,
            max_body_bytes=s.http__max_body_bytes,
            request_timeout_s=s.http__request_timeout,
            stats_window_s=s.queue__stats__window_side,
            prometheus_enabled=s.prometheus__enabled,
            fast_path=s.http__fast_path,
            tokens=security.api_tokens(s),
            caps=security.caps(s),
            peer_tls=security.peer_tls(s),
        )

    async def _serve_http(
        self,
        app: object,
        done: trio.Event,
        *,
        task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        s = self.settings
        config = HypercornConfig()
        config.bind = [f"{s.http__host}:{s.http__port}"]
        config.graceful_timeout = GRACEFUL_SHUTDOWN_S
        # An access log line costs Hypercorn about 100 us of work per request: only at debug.
        debug = logging.getLogger().isEnabledFor(logging.DEBUG)
        config.accesslog = logging.getLogger("hypercorn.access") if debug else None
        config.errorlog = logging.getLogger("hypercorn.error")
        config.keep_alive_timeout = 75  # longer than common client pools keep idle connections
        config.keep_alive_max_requests = 1_000_000  # Hypercorn's 1,000 makes clients reconnect
        if security.tls_enabled(s):
            config.certfile = s.http__certfile
            config.keyfile = s.http__keyfile
        try:
            with self._http_scope:
                await serve(  # type: ignore[arg-type]
                    app, config, shutdown_trigger=self._shutdown.wait, task_status=task_status
                )
        finally:
            done.set()

    async def _serve_grpc(
        self,
        app: Any,
        done: trio.Event,
        *,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """The Go server's gRPC service, each call answered by ``app`` (docs/grpc.md)."""
        from doq.grpc.server import GrpcServer, server_tls  # loaded only by a node serving gRPC

        s = self.settings
        assert s.grpc__address is not None
        assert self.service is not None
        # gRPC over TLS exactly when HTTP is, with the same certificate (docs/grpc.md, "TLS").
        tls = server_tls(s.http__certfile, s.http__keyfile) if security.tls_enabled(s) else None
        server = GrpcServer(s.grpc__address, app, self.service.http_address, tls=tls)
        try:
            with self._grpc_scope:
                await server.run(task_status=task_status)
        finally:
            done.set()

    async def _keep_membership(self) -> None:
        """Until the configuration lists this node as a voter at its current addresses: join
        through --cluster.join_addr (or the leader), or, as the leader, write it directly.
        Once it is so, a node that ``doq repair`` emptied is a member like any other again."""
        backoff_s = JOIN_BACKOFF_S_MIN
        tls = security.peer_tls(self.settings)
        async with httpx.AsyncClient(
            timeout=JOIN_REQUEST_TIMEOUT_S, verify=tls if tls is not None else True
        ) as client:
            while True:
                if self._listed_as_wanted():
                    repair.clear_rejoin_marker(self.settings.node_dir)
                    backoff_s = JOIN_BACKOFF_S_MIN
                    await trio.sleep(MEMBERSHIP_CHECK_S)
                    continue
                try:
                    await self._ask_to_join(client)
                except (ServiceError, NotLeader, NodeStopped, httpx.HTTPError) as exc:
                    logger.info("joining the cluster: %s; retrying in %.1f s", exc, backoff_s)
                    await trio.sleep(backoff_s * (0.5 + random.random()))
                    backoff_s = min(backoff_s * 2, JOIN_BACKOFF_S_MAX)
                    continue
                await trio.sleep(JOIN_BACKOFF_S_MIN)

    def _listed_as_wanted(self) -> bool:
        assert self.raft is not None
        me = self.raft.server(self.settings.cluster__node_id)
        return (
            me is not None
            and me.suffrage == Suffrage.VOTER
            and me.address == self.settings.raft__address
            and http_address(me) == self.settings.advertised_http
        )

    async def _ask_to_join(self, client: httpx.AsyncClient) -> None:
        assert self.raft is not None and self.service is not None
        s = self.settings
        # A member restarted at another Raft address asks to be moved there: this node is the
        # member, so nothing it cares for answers at the old address (the leader checks).
        if self.raft.is_leader:
            await self.service.join(
                s.cluster__node_id, s.raft__address, s.advertised_http, replace_unreachable=True
            )
            return
        target = s.cluster__join_addr
        if not target and self.discovery is not None:
            target = await self.discovery.leader_address() or ""
        leader = self.service.leader()
        if leader is not None and leader.http_address and leader.id != s.cluster__node_id:
            target = leader.http_address  # a member that moved: tell the leader directly
        if not target:
            raise ServiceError("no leader known yet and no --cluster.join_addr")
        body = {
            "id": s.cluster__node_id,
            "addr": s.raft__address,
            "http_addr": s.advertised_http,
            "replace_unreachable": True,
        }
        tokens = security.api_tokens(s)
        headers = {} if tokens is None else {"Authorization": f"Bearer {tokens.node_token}"}
        url = f"{security.http_scheme(s)}://{target}/API/v1/cluster/join"
        response = await client.post(url, json=body, headers=headers)
        if response.status_code != 200:
            raise ServiceError(f"{target} answered {response.status_code}: {response.text[:200]}")
        logger.info("joined the cluster through %s", target)

    async def _hand_over_leadership(self) -> None:
        """A leader that stops hands over to its most up-to-date voter first, so that clients
        see a leader change of one round trip rather than an election timeout."""
        raft = self.raft
        if raft is None or raft.core is None or not raft.is_leader:
            return
        progress = raft.core.status()["progress"]
        voters = raft.core.config.voters - {raft.node_id}
        candidates = sorted(
            (p["match"], peer)
            for peer, p in progress.items()
            if peer in voters  # type: ignore[union-attr]
        )
        if not candidates:
            return
        target = candidates[-1][1]
        with trio.move_on_after(LEADERSHIP_HANDOVER_S):
            try:
                await raft.transfer_leadership(target)
            except (NotLeader, NodeStopped, ServiceError):
                return
            while raft.is_leader:
                await trio.sleep(0.01)
            # A leader that stepped down for the transfer learns who won only from the winner's
            # first heartbeat: wait for it, or the log says "without handing over" after a
            # handover that worked (the e2e test saw this under load).
            await raft.wait_leader()
        if raft.leader_id == target:
            logger.info("handed leadership to %s", target)
        else:
            logger.info("stopping without handing over leadership (leader now: %s)", raft.leader_id)


class _InFlight:
    """An ASGI wrapper that counts the HTTP requests being handled, so that shutdown can wait for
    exactly those (and not for idle keep-alive connections)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.count = 0
        self._idle = trio.Event()
        self._idle.set()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.count += 1
        if self._idle.is_set():
            self._idle = trio.Event()
        try:
            await self.app(scope, receive, send)
        finally:
            self.count -= 1
            if self.count == 0:
                self._idle.set()

    async def wait_idle(self) -> None:
        await self._idle.wait()
