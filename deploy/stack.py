"""The Pulumi resources of a doq deployment, one per object of ``manifests.py``. The objects are
passed to pulumi-kubernetes' typed classes as they are (Kubernetes' own camelCase field names go
through unchanged), so the Pulumi program and the kustomize base are the same definitions."""

from __future__ import annotations

import re
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from manifests import DeployConfig, manifests

CLASSES: dict[tuple[str, str], Any] = {
    ("v1", "Namespace"): k8s.core.v1.Namespace,
    ("v1", "ServiceAccount"): k8s.core.v1.ServiceAccount,
    ("v1", "Service"): k8s.core.v1.Service,
    ("rbac.authorization.k8s.io/v1", "Role"): k8s.rbac.v1.Role,
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): k8s.rbac.v1.RoleBinding,
    ("policy/v1", "PodDisruptionBudget"): k8s.policy.v1.PodDisruptionBudget,
    ("apps/v1", "StatefulSet"): k8s.apps.v1.StatefulSet,
}


def read_config() -> tuple[DeployConfig, bool]:
    """``pulumi config set doq:replicas 5`` and so on; anything unset keeps its default."""
    config = pulumi.Config("doq")
    defaults = DeployConfig()
    deploy = DeployConfig(
        namespace=config.get("namespace") or defaults.namespace,
        replicas=config.get_int("replicas") or defaults.replicas,
        image=config.get("image") or defaults.image,
        storage_size=config.get("storage_size") or defaults.storage_size,
        storage_class=config.get("storage_class") or defaults.storage_class,
        cpu_request=config.get("cpu_request") or defaults.cpu_request,
        memory_request=config.get("memory_request") or defaults.memory_request,
        memory_limit=config.get("memory_limit") or defaults.memory_limit,
    )
    create_namespace = config.get_bool("create_namespace")
    return deploy, True if create_namespace is None else create_namespace


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def build(deploy: DeployConfig, create_namespace: bool = True) -> dict[str, Any]:
    """Every resource, keyed "<kind>/<name>"; the namespace first, everything else after it."""
    resources: dict[str, Any] = {}
    after: list[Any] = []
    for obj in manifests(deploy):
        if obj["kind"] == "Namespace" and not create_namespace:
            continue
        cls = CLASSES[(obj["apiVersion"], obj["kind"])]
        fields = {_snake(k): v for k, v in obj.items() if k not in ("apiVersion", "kind")}
        key = f"{obj['kind']}/{obj['metadata']['name']}"
        options = pulumi.ResourceOptions(depends_on=list(after))
        resource = cls(f"{obj['kind'].lower()}-{obj['metadata']['name']}", **fields, opts=options)
        resources[key] = resource
        if obj["kind"] == "Namespace":
            after.append(resource)
    return resources
