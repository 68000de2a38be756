"""``cd deploy && pulumi up``: doq on the Kubernetes cluster of the current kubeconfig context
(docs/kubernetes.md). Settings: ``pulumi config set doq:<key> <value>`` with keys namespace,
replicas, image, storage_size, storage_class, cpu_request, memory_request, memory_limit and
create_namespace."""

import pulumi
from stack import build, read_config

deploy, create_namespace = read_config()
resources = build(deploy, create_namespace)
pulumi.export("namespace", deploy.namespace)
pulumi.export("client_service", f"{deploy.name}.{deploy.namespace}.svc")
pulumi.export("replicas", deploy.replicas)
