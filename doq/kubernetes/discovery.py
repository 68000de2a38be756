"""Finding the cluster from the headless service's DNS, and deciding who bootstraps.

The headless service (``doq-internal``, with publishNotReadyAddresses) answers its DNS name with
the address of every pod of the StatefulSet, ready or not. A node asks each of them for its view
of the configuration (``GET /API/v1/cluster/servers``) to find the leader to join through.

Only pod 0 ever bootstraps, and only when no peer reports a configuration: pods of a new
StatefulSet all start empty, so a single designated founder cannot split the cluster in two. Pod 0
restarted with its volume has a log (the driver ignores a bootstrap then); pod 0 whose volume was
lost finds the running cluster through its peers and joins it instead of founding another.

The resolver is injectable: ``DnsResolver`` asks the system's resolver (A/AAAA records), while
``FileResolver`` (``--cluster.dns_file``, tests only) reads the answer from a JSON file, so that
tests on 127.0.0.1 control what "DNS" says.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from typing import Any, Protocol

import httpx
import trio

from doq.kubernetes.pod import Pod

logger = logging.getLogger("doq.kubernetes")

PEER_REQUEST_TIMEOUT_S = 2.0  # one peer's answer to "who is in the cluster?"
BOOTSTRAP_WAIT_S_MAX = 30.0  # pod 0 waits this long for listed peers that do not answer yet
PROBE_INTERVAL_S = 0.5
SERVERS_PATH = "/API/v1/cluster/servers"


class Resolver(Protocol):
    async def peers(self) -> list[str]:
        """The HTTP ``host:port`` of every pod behind the headless service (maybe this one)."""
        ...


class DnsResolver:
    """The headless service's A/AAAA records; every pod serves HTTP on the same port."""

    def __init__(self, service_fqdn: str, http_port: int) -> None:
        self.service_fqdn = service_fqdn
        self.http_port = http_port

    async def peers(self) -> list[str]:
        try:
            infos = await trio.socket.getaddrinfo(
                self.service_fqdn, self.http_port, type=socket.SOCK_STREAM
            )
        except OSError as exc:  # NXDOMAIN while the service has no endpoints yet
            logger.info("no DNS answer for %s yet: %s", self.service_fqdn, exc)
            return []
        found: list[str] = []
        for family, *_, sockaddr in infos:
            host = f"[{sockaddr[0]}]" if family == socket.AF_INET6 else sockaddr[0]
            address = f"{host}:{sockaddr[1]}"
            if address not in found:
                found.append(address)
        return found


class FileResolver:
    """A JSON list of HTTP ``host:port``, re-read on every lookup (tests change it as pods come
    and go). A missing or malformed file is an empty answer, as DNS would give."""

    def __init__(self, path: str) -> None:
        self.path = path

    async def peers(self) -> list[str]:
        try:
            with open(self.path) as f:
                body = json.load(f)
        except (OSError, ValueError):
            return []
        if not isinstance(body, list):
            return []
        return [peer for peer in body if isinstance(peer, str)]


class Discovery:
    def __init__(self, pod: Pod, resolver: Resolver, own_addresses: set[str], raft_dir: str):
        self.pod = pod
        self.resolver = resolver
        self.own_addresses = own_addresses  # this node's entries in the DNS answer
        self.raft_dir = raft_dir

    async def leader_address(self) -> str | None:
        """The leader's HTTP address, as any peer reports it; None when none knows one."""
        async with httpx.AsyncClient(timeout=PEER_REQUEST_TIMEOUT_S) as client:
            for _peer, servers in await self._views(client):
                for server in servers:
                    if server.get("is_leader") and server.get("http_addr"):
                        return str(server["http_addr"])
        return None

    async def should_bootstrap(self) -> bool:
        """Pod 0 founds the cluster when no peer reports a configuration; the others never."""
        if self.pod.ordinal != 0:
            return False
        if os.path.exists(self.raft_dir):
            return True  # a restart: the driver ignores the bootstrap when it has a log
        async with httpx.AsyncClient(timeout=PEER_REQUEST_TIMEOUT_S) as client:
            with trio.move_on_after(BOOTSTRAP_WAIT_S_MAX):
                while True:
                    peers = await self._others()
                    views = await self._views(client, peers)
                    if any(servers for _, servers in views):
                        logger.info("a cluster exists (%s): joining it", views[0][0])
                        return False
                    if len(views) == len(peers):
                        logger.info("no peer has a cluster (%d asked): bootstrapping", len(peers))
                        return True
                    await trio.sleep(PROBE_INTERVAL_S)
        logger.warning("peers listed in DNS did not answer in time: bootstrapping")
        return True

    async def _others(self) -> list[str]:
        return [p for p in await self.resolver.peers() if p not in self.own_addresses]

    async def _views(
        self, client: httpx.AsyncClient, peers: list[str] | None = None
    ) -> list[tuple[str, list[dict[str, Any]]]]:
        """(peer, its configuration's servers) for each peer that answered."""
        views = []
        for peer in await self._others() if peers is None else peers:
            try:
                response = await client.get(f"http://{peer}{SERVERS_PATH}")
                servers = response.json()["servers"] if response.status_code == 200 else None
            except (httpx.HTTPError, ValueError, KeyError, TypeError):
                continue
            if isinstance(servers, list):
                views.append((peer, [s for s in servers if isinstance(s, dict)]))
        return views


def discovery_for(settings: Any, pod: Pod, pod_ip: str) -> Discovery:
    if settings.cluster__dns_file:
        resolver: Resolver = FileResolver(settings.cluster__dns_file)
    else:
        resolver = DnsResolver(pod.service_fqdn, settings.http__port)
    own = {settings.advertised_http}
    if pod_ip:
        own.add(
            f"[{pod_ip}]:{settings.http__port}"
            if ":" in pod_ip
            else f"{pod_ip}:{settings.http__port}"
        )
    return Discovery(pod, resolver, own, os.path.join(settings.node_dir, "raft"))
