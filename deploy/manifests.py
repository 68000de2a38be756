"""Every Kubernetes object of a doq deployment, as plain data: the one definition that both the
Pulumi program (``__main__.py``) and the kustomize base (``kustomize/base``, written by
``python deploy/manifests.py``) come from, so the two cannot drift (tests/kubernetes checks the
committed base against this file). docs/kubernetes.md explains each choice.

- ``doq-internal``: headless, ``publishNotReadyAddresses``, so pods find each other (and their
  stable DNS names exist) before any is ready; the StatefulSet's governing service.
- ``doq``: the clients' Service. No selector: the leader writes its EndpointSlice
  (doq/kubernetes/endpoint.py), so it points at the leader only.
- The StatefulSet uses ``Parallel`` pod management: ``/readyz`` needs a leader, and a leader needs
  a majority, so with ``OrderedReady`` a whole-cluster restart would wait forever for pod 0.
- The Role grants only what the node does: create the slice, get and update that one slice, get
  the StatefulSet (the preStop hook reads its replica count).
"""

from __future__ import annotations

import sys
from typing import Any

import attrs
import yaml

HTTP_PORT = 8000
RAFT_PORT = 9000
GRPC_PORT = 10000  # the Go server's gRPC service (--grpc.address, docs/grpc.md)
DATA_DIR = "/data"
TERMINATION_GRACE_S = 90  # above doq/kubernetes/prestop.py's LEAVE_WAIT_S_MAX (60 s)


@attrs.frozen
class DeployConfig:
    name: str = "doq"
    namespace: str = "doq"
    replicas: int = 3
    image: str = "doq:0.1.0"  # built from the top-level Dockerfile and pushed where nodes pull
    storage_size: str = "10Gi"
    storage_class: str = ""  # empty: the cluster's default StorageClass
    cpu_request: str = "250m"
    memory_request: str = "256Mi"
    memory_limit: str = "1Gi"

    @property
    def security_secret(self) -> str:
        return f"{self.name}-security"

    @property
    def internal_service(self) -> str:
        return f"{self.name}-internal"

    @property
    def labels(self) -> dict[str, str]:
        return {"app.kubernetes.io/name": self.name, "app.kubernetes.io/component": "queue"}


def _meta(c: DeployConfig, name: str, namespaced: bool = True) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": dict(c.labels)}
    if namespaced:
        meta["namespace"] = c.namespace
    return meta


def _ports() -> list[dict[str, Any]]:
    return [
        {"name": "http", "port": HTTP_PORT, "targetPort": "http", "protocol": "TCP"},
        {"name": "raft", "port": RAFT_PORT, "targetPort": "raft", "protocol": "TCP"},
        {"name": "grpc", "port": GRPC_PORT, "targetPort": "grpc", "protocol": "TCP"},
    ]


def namespace(c: DeployConfig) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(c, c.namespace, False)}


def service_account(c: DeployConfig) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(c, c.name)}


def role(c: DeployConfig) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _meta(c, c.name),
        "rules": [
            # create cannot be limited to a name: the API checks names only on existing objects.
            {
                "apiGroups": ["discovery.k8s.io"],
                "resources": ["endpointslices"],
                "verbs": ["create"],
            },
            {
                "apiGroups": ["discovery.k8s.io"],
                "resources": ["endpointslices"],
                "resourceNames": [c.name],
                "verbs": ["get", "update"],
            },
            {
                "apiGroups": ["apps"],
                "resources": ["statefulsets"],
                "resourceNames": [c.name],
                "verbs": ["get"],
            },
        ],
    }


def role_binding(c: DeployConfig) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(c, c.name),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": c.name},
        "subjects": [{"kind": "ServiceAccount", "name": c.name, "namespace": c.namespace}],
    }


def internal_service(c: DeployConfig) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(c, c.internal_service),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": dict(c.labels),
            "ports": _ports(),
        },
    }


def client_service(c: DeployConfig) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(c, c.name),
        "spec": {
            "type": "ClusterIP",
            "ports": [{"name": "http", "port": HTTP_PORT, "targetPort": HTTP_PORT}],
        },
    }


def pod_disruption_budget(c: DeployConfig) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(c, c.name),
        "spec": {"minAvailable": c.replicas // 2 + 1, "selector": {"matchLabels": dict(c.labels)}},
    }


def _field_env(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def _secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    """From a Secret that may not exist: without it the variable is unset and the node runs
    without that protection (docs/kubernetes.md, "Closing the cluster")."""
    ref = {"name": secret, "key": key, "optional": True}
    return {"name": name, "valueFrom": {"secretKeyRef": ref}}


def _container(c: DeployConfig) -> dict[str, Any]:
    def probe(path: str, period_s: int, failures: int) -> dict[str, Any]:
        return {
            "httpGet": {"path": path, "port": "http"},
            "periodSeconds": period_s,
            "timeoutSeconds": 2,
            "failureThreshold": failures,
        }

    return {
        "name": "doq",
        "image": c.image,
        "env": [
            _field_env("POD_NAME", "metadata.name"),
            _field_env("POD_NAMESPACE", "metadata.namespace"),
            _field_env("POD_IP", "status.podIP"),
            # In the environment (not arguments) so that `doq prestop` sees them too.
            {"name": "DOQ_CLUSTER_SERVICE_NAME", "value": c.internal_service},
            {"name": "DOQ_CLUSTER_LEADER_SERVICE", "value": c.name},
            {"name": "DOQ_STORAGE_DATA_DIR", "value": DATA_DIR},
            {"name": "DOQ_HTTP_PORT", "value": str(HTTP_PORT)},
            {"name": "DOQ_GRPC_ADDRESS", "value": f"0.0.0.0:{GRPC_PORT}"},
            # Optional: the cluster's CURVE key (doq keys init) and the API's bearer tokens.
            _secret_env("DOQ_RAFT_CURVE_KEY", c.security_secret, "curve-key"),
            _secret_env("DOQ_HTTP_TOKENS", c.security_secret, "tokens"),
        ],
        "ports": [
            {"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"},
            {"name": "raft", "containerPort": RAFT_PORT, "protocol": "TCP"},
            {"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},
        ],
        "readinessProbe": probe("/readyz", 5, 3),
        "livenessProbe": probe("/livez", 10, 6),
        "startupProbe": probe("/livez", 2, 60),
        "lifecycle": {"preStop": {"exec": {"command": ["doq", "prestop"]}}},
        "resources": {
            "requests": {"cpu": c.cpu_request, "memory": c.memory_request},
            "limits": {"memory": c.memory_limit},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        # The root filesystem is read-only; uploads (a restore) may spool to /tmp.
        "volumeMounts": [
            {"name": "data", "mountPath": DATA_DIR},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }


def statefulset(c: DeployConfig) -> dict[str, Any]:
    claim_spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": c.storage_size}},
    }
    if c.storage_class:
        claim_spec["storageClassName"] = c.storage_class
    anti_affinity = {
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {
                "weight": 100,
                "podAffinityTerm": {
                    "labelSelector": {"matchLabels": dict(c.labels)},
                    "topologyKey": "kubernetes.io/hostname",
                },
            }
        ]
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _meta(c, c.name),
        "spec": {
            "serviceName": c.internal_service,
            "replicas": c.replicas,
            "podManagementPolicy": "Parallel",
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
            "selector": {"matchLabels": dict(c.labels)},
            "template": {
                "metadata": {"labels": dict(c.labels)},
                "spec": {
                    "serviceAccountName": c.name,
                    "terminationGracePeriodSeconds": TERMINATION_GRACE_S,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "runAsGroup": 10001,
                        "fsGroup": 10001,
                    },
                    "affinity": {"podAntiAffinity": anti_affinity},
                    "containers": [_container(c)],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                },
            },
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": claim_spec}],
        },
    }


def manifests(c: DeployConfig) -> list[dict[str, Any]]:
    """In the order they should be applied."""
    return [
        namespace(c),
        service_account(c),
        role(c),
        role_binding(c),
        internal_service(c),
        client_service(c),
        pod_disruption_budget(c),
        statefulset(c),
    ]


KUSTOMIZE_HEADER = (
    "# Generated by `python deploy/manifests.py` from deploy/manifests.py, the definitions the\n"
    "# Pulumi program uses too. Do not edit: change manifests.py and regenerate.\n"
)


def kustomize_base(c: DeployConfig) -> dict[str, str]:
    """The files of the kustomize base: {file name: text}."""
    objects = manifests(c)
    files = {}
    names = []
    for obj in objects:
        file_name = f"{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"
        names.append(file_name)
        files[file_name] = KUSTOMIZE_HEADER + yaml.safe_dump(obj, sort_keys=False)
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": c.namespace,
        "resources": names,
    }
    files["kustomization.yaml"] = KUSTOMIZE_HEADER + yaml.safe_dump(kustomization, sort_keys=False)
    return files


def main(argv: list[str]) -> int:
    import os

    target = argv[0] if argv else os.path.join(os.path.dirname(__file__), "kustomize", "base")
    os.makedirs(target, exist_ok=True)
    for name in os.listdir(target):
        if name.endswith(".yaml"):
            os.remove(os.path.join(target, name))
    for name, text in kustomize_base(DeployConfig()).items():
        with open(os.path.join(target, name), "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
