"""What a node started with ``--cluster.service_name`` runs with: its settings as the pod it is
(doq/kubernetes/pod.py), the discovery that replaces ``--cluster.join_addr``, and, with
``--cluster.leader_service``, the leader's EndpointSlice publisher."""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from doq.config import ConfigError, Settings
from doq.kubernetes.discovery import Discovery, discovery_for
from doq.kubernetes.endpoint import LeaderEndpoint, Target, leader_endpoint_for
from doq.kubernetes.pod import pod_from, read_namespace_file, settings_for_pod


@attrs.frozen
class KubernetesParts:
    settings: Settings
    discovery: Discovery
    leader_endpoint: LeaderEndpoint | None


def prepare(settings: Settings, environ: Mapping[str, str]) -> KubernetesParts:
    if settings.cluster__join_addr:
        raise ConfigError("cluster.join_addr and cluster.service_name exclude each other")
    pod = pod_from(settings, environ, read_namespace_file())
    settings = settings_for_pod(settings, pod)
    pod_ip = environ.get("POD_IP", "")
    endpoint = None
    if settings.cluster__leader_service:
        if not pod_ip:
            raise ConfigError(
                "cluster.leader_service needs POD_IP (the downward API's status.podIP)"
            )
        me = Target(pod.name, pod.namespace, pod_ip, settings.http__port)
        endpoint = leader_endpoint_for(settings.cluster__leader_service, pod.namespace, me)
    return KubernetesParts(settings, discovery_for(settings, pod, pod_ip), endpoint)
