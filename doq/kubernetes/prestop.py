"""``doq prestop``: the StatefulSet's preStop hook. A pod that is going away because the
StatefulSet was scaled below its ordinal leaves the Raft configuration first; a pod that is only
restarting (a rolling upgrade, a drained node, an eviction) stays a member and rejoins as itself.

The difference is visible in one place: the StatefulSet's ``spec.replicas`` (read with the pod's
service account: the Role grants ``get`` on that one StatefulSet). The leave request goes to this
node's own HTTP port and is relayed to the leader like any write; the command waits until it
commits, within the pod's termination grace period. Then kubelet sends SIGTERM. (The removed node
is not sent the entry that removes it, so it does not learn of it and does not ask to join again.)
"""

from __future__ import annotations

import logging
import os
import ssl
import sys
import time
from collections.abc import Sequence

import httpx

from doq import config
from doq.kubernetes.pod import Pod, pod_from, read_namespace_file, settings_for_pod

logger = logging.getLogger("doq.kubernetes")

LEAVE_WAIT_S_MAX = 60.0  # keep terminationGracePeriodSeconds above this (deploy/ sets 90)
LEAVE_RETRY_S = 1.0
LEAVE_REQUEST_TIMEOUT_S = 15.0


def replicas_wanted(pod: Pod) -> int:
    """The StatefulSet's spec.replicas, from the Kubernetes API."""
    from lightkube import Client
    from lightkube.config.kubeconfig import KubeConfig
    from lightkube.resources.apps_v1 import StatefulSet

    client = Client(config=KubeConfig.from_env(), namespace=pod.namespace)
    found = client.get(StatefulSet, pod.statefulset, namespace=pod.namespace)
    return int(found.spec.replicas if found.spec.replicas is not None else 1)


def local_http(settings: config.Settings) -> str:
    host = settings.http__host
    if host in ("", "0.0.0.0", "::", "[::]"):
        host = "127.0.0.1"
    return f"{host}:{settings.http__port}"


def leave(
    http_address: str,
    node_id: str,
    deadline_s: float = LEAVE_WAIT_S_MAX,
    *,
    settings: config.Settings | None = None,
) -> bool:
    """Ask the cluster, through this node, to remove it; True once it is no longer listed.
    With ``settings``, over HTTPS and with the node's admin token when they say so."""
    deadline = time.monotonic() + deadline_s
    scheme, verify, headers = "http", None, {}
    if settings is not None:
        scheme, verify, headers = _local_credentials(settings)
    with httpx.Client(timeout=LEAVE_REQUEST_TIMEOUT_S, verify=verify or True) as client:
        while time.monotonic() < deadline:
            try:
                answer = client.post(
                    f"{scheme}://{http_address}/API/v1/cluster/leave",
                    json={"id": node_id},
                    headers=headers,
                )
                if answer.status_code == 200:
                    return True
                logger.warning("leave answered %s: %s", answer.status_code, answer.text[:200])
            except httpx.HTTPError as exc:
                logger.warning("leave failed: %r", exc)
            time.sleep(LEAVE_RETRY_S)
    return False


def _local_credentials(
    settings: config.Settings,
) -> tuple[str, ssl.SSLContext | None, dict[str, str]]:
    """The scheme, TLS context and headers of a call to this pod's own node. The certificate
    names the pod's DNS names, not 127.0.0.1: the chain is verified, the name is not."""
    from doq import security

    tls = security.peer_tls(settings)
    if tls is not None:
        tls.check_hostname = False
    tokens = security.api_tokens(settings)
    headers = {} if tokens is None else {"Authorization": f"Bearer {tokens.node_token}"}
    return security.http_scheme(settings), tls, headers


def main(argv: Sequence[str], environ: dict[str, str] | None = None) -> int:
    env = dict(os.environ if environ is None else environ)
    logging.basicConfig(level=logging.INFO, format="doq prestop: %(message)s")
    try:
        settings = config.load(argv, env)
        if not settings.cluster__service_name:
            raise config.ConfigError("doq prestop needs cluster.service_name (Kubernetes only)")
        pod = pod_from(settings, env, read_namespace_file())
        settings = settings_for_pod(settings, pod)
    except config.ConfigError as exc:
        print(f"doq prestop: {exc}", file=sys.stderr)
        return 2
    try:
        wanted = replicas_wanted(pod)
    except Exception as exc:  # no API access: staying a member is the safe default
        logger.error("cannot read StatefulSet %s: %r; staying a member", pod.statefulset, exc)
        return 1
    if pod.ordinal < wanted:
        logger.info("%s is restarting, not scaled away (replicas %d): staying", pod.name, wanted)
        return 0
    logger.info("%s is scaled away (replicas %d): leaving the cluster", pod.name, wanted)
    return 0 if leave(local_http(settings), pod.name, settings=settings) else 1
