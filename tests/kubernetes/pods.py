"""StatefulSet pods as real node processes on 127.0.0.1: each started as ``doq`` with
``--cluster.service_name`` and its pod name in the environment, told nothing about its peers but
what the "DNS" file (``--cluster.dns_file``) lists, as publishNotReadyAddresses would. With a
stand-in API server, each also publishes the leader through KUBECONFIG."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from ..e2e.cluster import NodeProcess, ProcessCluster

NAMESPACE = "test"
SERVICE = "doq-internal"
CLIENT_SERVICE = "doq"


class PodProcess(NodeProcess):
    def __init__(self, root: str, ordinal: int, extra: list[str], env: dict[str, str]) -> None:
        super().__init__(root, ordinal, None, extra)
        self.id = f"doq-{ordinal}"
        self.log_path = os.path.join(root, f"{self.id}.log")
        self.env = env

    def start(self) -> None:
        argv = [
            sys.executable,
            "-m",
            "doq",
            "--cluster.service_name",
            SERVICE,
            "--cluster.namespace",
            NAMESPACE,
            "--cluster.dns_file",
            dns_file(self.root),
            "--storage.data_dir",
            os.path.join(self.root, "data"),
            "--http.host",
            "127.0.0.1",
            "--http.port",
            str(self.http_port),
            "--http.advertise",
            self.http_address,
            "--raft.address",
            f"127.0.0.1:{self.raft_port}",
            "--raft.tick_ms",
            "20",
            "--raft.election_timeout_ticks",
            "15",
            "--http.request_timeout",
            "5",
            *self.extra,
        ]
        env = {**os.environ, "POD_NAME": self.id, "POD_IP": "127.0.0.1", **self.env}
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it until it exits
        self.popen = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()

    def prestop(self) -> subprocess.CompletedProcess[str]:
        """The preStop hook, as kubelet runs it in this pod's container."""
        env = {**os.environ, "POD_NAME": self.id, **self.env}
        argv = [sys.executable, "-m", "doq", "prestop", "--cluster.service_name", SERVICE]
        argv += ["--cluster.namespace", NAMESPACE, "--http.host", "127.0.0.1"]
        argv += ["--http.port", str(self.http_port)]
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=90)


def dns_file(root: str) -> str:
    return os.path.join(root, "dns.json")


class PodCluster(ProcessCluster):
    """Pods doq-0 .. doq-(size-1); none is told to join anything."""

    def __init__(
        self, root: str, size: int = 3, extra: list[str] | None = None, env: dict | None = None
    ):
        super().__init__(root, size=0)
        self.nodes = []
        self.extra = extra or []
        self.env = env or {}
        for ordinal in range(size):
            self.nodes.append(PodProcess(root, ordinal, self.extra, self.env))
        self.publish_dns()

    def add_pod(self) -> PodProcess:
        pod = PodProcess(self.root, len(self.nodes), self.extra, self.env)
        self.nodes.append(pod)
        self.publish_dns()
        return pod

    def publish_dns(self, pods: list[NodeProcess] | None = None) -> None:
        """What the headless service's DNS answers: every pod's HTTP address."""
        answer = [p.http_address for p in (self.nodes if pods is None else pods)]
        tmp = dns_file(self.root) + ".tmp"
        with open(tmp, "w") as f:
            json.dump(answer, f)
        os.replace(tmp, dns_file(self.root))
