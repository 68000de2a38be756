"""A StatefulSet pod's identity, and the node settings it implies.

A StatefulSet names its pods ``<set>-<ordinal>`` and, with a headless service, gives each a stable
DNS name ``<pod>.<service>.<namespace>.svc.<domain>`` that kubelet also writes into the pod's own
/etc/hosts (so binding to it works before cluster DNS has published the pod). The node id is the
pod name, and the Raft and HTTP addresses other nodes use are that DNS name: they survive a
restart that changes the pod's IP. Pure: the environment and the namespace file are passed in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import attrs

from doq.config import ConfigError, Settings

SERVICE_ACCOUNT_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
_POD_NAME = re.compile(r"(?P<set>[a-z0-9]([-a-z0-9]*[a-z0-9])?)-(?P<ordinal>0|[1-9][0-9]*)")
_DEFAULTS = {f.name: f.default for f in attrs.fields(Settings)}


@attrs.frozen
class Pod:
    name: str  # "doq-2": also the node id
    statefulset: str  # "doq"
    ordinal: int  # 2
    service: str  # the headless service: "doq-internal"
    namespace: str
    domain: str  # the cluster's DNS domain: "cluster.local"

    @property
    def fqdn(self) -> str:
        return f"{self.name}.{self.service}.{self.namespace}.svc.{self.domain}"

    @property
    def service_fqdn(self) -> str:
        return f"{self.service}.{self.namespace}.svc.{self.domain}"


def pod_from(settings: Settings, environ: Mapping[str, str], namespace_file_text: str = "") -> Pod:
    """The pod this node runs as: its name from POD_NAME (the downward API) or HOSTNAME (a
    StatefulSet pod's hostname is its name)."""
    name = environ.get("POD_NAME") or environ.get("HOSTNAME") or ""
    match = _POD_NAME.fullmatch(name)
    if match is None:
        raise ConfigError(
            f"cluster.service_name is set but the pod name {name!r} (POD_NAME or HOSTNAME) is "
            "not a StatefulSet pod's <name>-<ordinal>"
        )
    namespace = (
        settings.cluster__namespace
        or namespace_file_text.strip()
        or environ.get("POD_NAMESPACE", "")
        or "default"
    )
    return Pod(
        name=name,
        statefulset=match["set"],
        ordinal=int(match["ordinal"]),
        service=settings.cluster__service_name,
        namespace=namespace,
        domain=settings.cluster__domain,
    )


def settings_for_pod(settings: Settings, pod: Pod) -> Settings:
    """The node id is the pod name; the Raft address and the advertised HTTP address default to
    the pod's DNS name (an address given explicitly is kept)."""
    if settings.cluster__node_id not in (_DEFAULTS["cluster__node_id"], pod.name):
        raise ConfigError(
            f"cluster.node_id {settings.cluster__node_id!r} differs from the pod name "
            f"{pod.name!r}: on Kubernetes the node id is the pod name; leave it unset"
        )
    raft_address = settings.raft__address
    if raft_address == _DEFAULTS["raft__address"]:
        raft_address = f"{pod.fqdn}:{raft_address.rsplit(':', 1)[1]}"
    return attrs.evolve(
        settings,
        cluster__node_id=pod.name,
        raft__address=raft_address,
        http__advertise=settings.http__advertise or f"{pod.fqdn}:{settings.http__port}",
    )


def read_namespace_file(path: str = SERVICE_ACCOUNT_NAMESPACE_FILE) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""
