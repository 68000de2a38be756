"""The leader publishes itself as the only endpoint of the client Service (``doq``).

Why an EndpointSlice rather than a label on the leader's pod: the slice is one object that names
one pod, so a change of leader is one write that replaces the old name with the new; no moment
has two labelled pods, and a leader killed with -9 leaves nothing behind that outlives it (a label
stays on the pod object through container restarts until someone removes it). The Role can also
name the one object the node may update. The ``doq`` Service has no selector, so Kubernetes' own
controller leaves the slice to us (this is what the Go server does too).

The loop reconciles rather than reacts: while leading, it makes sure the slice names this pod
(and checks again every ``RESYNC_S``, in case a deposed leader wrote over it before it learnt it
was deposed); on losing leadership it withdraws at once, if the slice still names it, with the
resourceVersion it read, so a withdrawal never erases a successor's write. Every API failure is
logged, counted and retried with backoff: the Kubernetes API never stops a node.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any, Protocol

import attrs
import trio

logger = logging.getLogger("doq.kubernetes")

LEADERSHIP_POLL_S = 0.05  # how soon a change of leadership is noticed
RESYNC_S = 5.0  # how often a leader checks that the slice still names it
RETRY_BACKOFF_MIN_S = 0.1
RETRY_BACKOFF_S_MAX = 5.0
MANAGED_BY = "doq.leader"  # the endpointslice.kubernetes.io/managed-by label


@attrs.frozen
class Target:
    """This pod, as the slice names it."""

    pod_name: str
    namespace: str
    ip: str
    port: int  # the HTTP port behind the Service's port named "http"


@attrs.frozen
class Published:
    resource_version: str
    pod_name: str | None  # None: the slice names no pod


class EndpointApi(Protocol):
    async def read(self) -> Published | None:
        """The slice as it is; None when it does not exist."""
        ...

    async def write(self, leader: Target | None, resource_version: str | None) -> None:
        """Create the slice (resource_version None) or replace the version read (a conflict if
        it changed since) so that it names ``leader``, or nothing."""
        ...


class LeaderEndpoint:
    def __init__(self, api: EndpointApi, me: Target) -> None:
        self.api = api
        self.me = me
        self.errors = 0  # API calls that failed (each retried)
        self._named: bool | None = None  # does the slice name this pod? None: not known

    async def run(self, is_leader: Callable[[], bool]) -> None:
        backoff_s = RETRY_BACKOFF_MIN_S
        while True:
            leading = is_leader()
            try:
                await self._reconcile(leading)
            except Exception as exc:  # any failure of the API or the client: retry, never crash
                self.errors += 1
                logger.warning("leader endpoint: %r; retrying in %.1f s", exc, backoff_s)
                await trio.sleep(backoff_s * (0.5 + random.random()))
                backoff_s = min(backoff_s * 2, RETRY_BACKOFF_S_MAX)
                continue
            backoff_s = RETRY_BACKOFF_MIN_S
            with trio.move_on_after(RESYNC_S if leading else float("inf")):
                while is_leader() == leading:
                    await trio.sleep(LEADERSHIP_POLL_S)

    async def withdraw(self) -> None:
        """One attempt to stop being named (a node shutting down); failures are only logged."""
        try:
            await self._reconcile(False)
        except Exception as exc:
            logger.warning("leader endpoint: withdrawing at shutdown failed: %r", exc)

    async def _reconcile(self, leading: bool) -> None:
        if not leading and self._named is False:
            return  # a follower that is known not to be named makes no API call
        current = await self.api.read()
        named = current is not None and current.pod_name == self.me.pod_name
        if leading and not named:
            await self.api.write(self.me, current.resource_version if current else None)
            logger.info("leader endpoint: the client Service now points at this pod")
        elif not leading and named:
            assert current is not None
            await self.api.write(None, current.resource_version)
            logger.info("leader endpoint: withdrawn (no longer the leader)")
        self._named = leading


class LightkubeEndpointApi:
    """EndpointApi over lightkube's async client (httpx under anyio, so it runs under Trio)."""

    def __init__(
        self, connect: Callable[[], Any], service: str, namespace: str, ip_family: str
    ) -> None:
        self._connect = connect  # called on first use, so a bad setup is retried, not fatal
        self._client: Any = None
        self.service = service
        self.namespace = namespace
        self.address_type = "IPv6" if ip_family == "IPv6" else "IPv4"

    def client(self) -> Any:
        if self._client is None:
            self._client = self._connect()
        return self._client

    async def read(self) -> Published | None:
        from lightkube import ApiError
        from lightkube.resources.discovery_v1 import EndpointSlice

        try:
            found = await self.client().get(EndpointSlice, self.service, namespace=self.namespace)
        except ApiError as exc:
            if exc.status.code == 404:
                return None
            raise
        pod_name = None
        for endpoint in found.endpoints or []:
            if endpoint.targetRef is not None:
                pod_name = endpoint.targetRef.name
        return Published(found.metadata.resourceVersion, pod_name)

    async def write(self, leader: Target | None, resource_version: str | None) -> None:
        from lightkube.models.core_v1 import ObjectReference
        from lightkube.models.discovery_v1 import Endpoint, EndpointConditions, EndpointPort
        from lightkube.models.meta_v1 import ObjectMeta
        from lightkube.resources.discovery_v1 import EndpointSlice

        endpoints = []
        ports = []
        if leader is not None:
            ref = ObjectReference(kind="Pod", name=leader.pod_name, namespace=leader.namespace)
            conditions = EndpointConditions(ready=True, serving=True, terminating=False)
            endpoints = [Endpoint(addresses=[leader.ip], conditions=conditions, targetRef=ref)]
            ports = [EndpointPort(name="http", port=leader.port, protocol="TCP")]
        body = EndpointSlice(
            metadata=ObjectMeta(
                name=self.service,
                namespace=self.namespace,
                labels={
                    "kubernetes.io/service-name": self.service,
                    "endpointslice.kubernetes.io/managed-by": MANAGED_BY,
                },
                resourceVersion=resource_version,
            ),
            addressType=self.address_type,
            endpoints=endpoints,
            ports=ports,
        )
        if resource_version is None:
            await self.client().create(body, namespace=self.namespace)
        else:
            await self.client().replace(body, namespace=self.namespace)


def leader_endpoint_for(service: str, namespace: str, me: Target) -> LeaderEndpoint:
    """The publisher for a pod, with lightkube's client configured from the environment: the
    pod's service account inside a cluster, else $KUBECONFIG (tests point it at a stand-in)."""

    def connect() -> Any:
        from lightkube import AsyncClient
        from lightkube.config.kubeconfig import KubeConfig

        return AsyncClient(config=KubeConfig.from_env(), namespace=namespace, field_manager="doq")

    family = "IPv6" if ":" in me.ip else "IPv4"
    return LeaderEndpoint(LightkubeEndpointApi(connect, service, namespace, family), me)
