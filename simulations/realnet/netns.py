"""A private virtual network: one network namespace per node, each joined by a veth pair to a
bridge in the root namespace, addresses in 10.213.<net>.0/24. The bridge has no uplink and no
route leads elsewhere, so every packet stays on this machine. Partitions and packet loss are
iptables rules inside the nodes' namespaces; the clients (root namespace, the bridge's address)
are never cut off, as in Jepsen: a fault separates nodes from nodes.

``Network`` records everything it creates and ``close`` removes it, also after a failure: the
namespaces (which take their veth ends with them) and the bridge.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import attrs

SUBNET_PREFIX = "10.213"
BRIDGE_HOST = 1  # the root namespace's (the clients') address on the bridge: .1
NODE_HOST_BASE = 10  # node i is .(10 + i)


class NetworkError(RuntimeError):
    pass


def missing_tools() -> list[str]:
    """The commands this module needs and cannot find."""
    return [tool for tool in ("ip", "iptables") if shutil.which(tool) is None]


def run(argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise NetworkError(f"{' '.join(argv)}: {done.stderr.strip()}")
    return done


@attrs.frozen
class Host:
    index: int
    namespace: str
    address: str  # in the private subnet


@attrs.define
class Network:
    tag: str  # short, unique on this machine: names must fit 15 characters
    net: int  # the third octet of the subnet
    hosts: list[Host] = attrs.Factory(list)
    bridge_up: bool = False

    @classmethod
    def create(cls, size: int) -> Network:
        tag = f"{os.getpid() % 100000}"
        network = cls(tag=tag, net=os.getpid() % 200 + 20)
        try:
            network._create(size)
        except BaseException:
            network.close()
            raise
        return network

    @property
    def bridge(self) -> str:
        return f"dqb{self.tag}"

    @property
    def client_address(self) -> str:
        return f"{SUBNET_PREFIX}.{self.net}.{BRIDGE_HOST}"

    def _create(self, size: int) -> None:
        run(["ip", "link", "add", self.bridge, "type", "bridge"])
        self.bridge_up = True
        run(["ip", "addr", "add", f"{self.client_address}/24", "dev", self.bridge])
        run(["ip", "link", "set", self.bridge, "up"])
        for index in range(1, size + 1):
            self._add_host(index)

    def _add_host(self, index: int) -> None:
        host = Host(
            index, f"dq{self.tag}n{index}", f"{SUBNET_PREFIX}.{self.net}.{NODE_HOST_BASE + index}"
        )
        run(["ip", "netns", "add", host.namespace])
        self.hosts.append(host)
        outer, inner = f"dq{self.tag}v{index}", f"dq{self.tag}i{index}"
        run(["ip", "link", "add", outer, "type", "veth", "peer", "name", inner])
        run(["ip", "link", "set", inner, "netns", host.namespace])
        run(["ip", "link", "set", outer, "master", self.bridge])
        run(["ip", "link", "set", outer, "up"])
        self.inside(host, ["ip", "addr", "add", f"{host.address}/24", "dev", inner])
        self.inside(host, ["ip", "link", "set", inner, "up"])
        self.inside(host, ["ip", "link", "set", "lo", "up"])

    def inside(
        self, host: Host, argv: list[str], check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return run(["ip", "netns", "exec", host.namespace, *argv], check)

    # --- faults ---------------------------------------------------------------------------------
    def drop_from(self, host: Host, sources: list[Host]) -> None:
        """``host`` no longer receives anything from ``sources`` (one way: it still sends)."""
        for source in sources:
            self.inside(host, ["iptables", "-A", "INPUT", "-s", source.address, "-j", "DROP"])

    def lose(self, host: Host, probability: float) -> None:
        """``host`` drops this share of the packets it receives from the other nodes."""
        self.inside(
            host,
            [
                "iptables",
                "-A",
                "INPUT",
                "!",
                "-s",
                self.client_address,
                "-m",
                "statistic",
                "--mode",
                "random",
                "--probability",
                f"{probability:.3f}",
                "-j",
                "DROP",
            ],
        )

    def heal(self) -> None:
        for host in self.hosts:
            self.inside(host, ["iptables", "-F", "INPUT"])

    def close(self) -> None:
        """Remove what was created; keep going past errors so that nothing is left behind."""
        for host in self.hosts:
            run(["ip", "netns", "del", host.namespace], check=False)
            # The namespace takes its veth end along only once nothing holds it: delete the pair
            # from the outside too, so that no interface outlives the run.
            run(["ip", "link", "del", f"dq{self.tag}v{host.index}"], check=False)
        self.hosts.clear()
        if self.bridge_up:
            run(["ip", "link", "del", self.bridge], check=False)
            self.bridge_up = False
