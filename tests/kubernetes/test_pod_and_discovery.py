"""A pod's identity and settings from its StatefulSet name, the resolvers, and who bootstraps:
pod 0 alone, and only when no peer reports a cluster."""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import trio

from doq import config
from doq.kubernetes import discovery
from doq.kubernetes.discovery import Discovery, DnsResolver, FileResolver
from doq.kubernetes.pod import Pod, pod_from, settings_for_pod
from doq.kubernetes.setup import prepare

from ..support import free_port


def _settings(*argv: str) -> config.Settings:
    return config.load(["--cluster.service_name", "doq-internal", *argv], {})


def test_the_node_id_and_addresses_come_from_the_pod_name():
    s = _settings("--cluster.namespace", "queues")
    pod = pod_from(s, {"HOSTNAME": "doq-2"})
    assert (pod.statefulset, pod.ordinal, pod.namespace) == ("doq", 2, "queues")
    derived = settings_for_pod(s, pod)
    fqdn = "doq-2.doq-internal.queues.svc.cluster.local"
    assert derived.cluster__node_id == "doq-2"
    assert derived.raft__address == f"{fqdn}:9000"
    assert derived.advertised_http == f"{fqdn}:8000"


def test_pod_name_comes_first_then_hostname_and_explicit_addresses_stay():
    s = _settings("--raft.address", "127.0.0.1:7000", "--http.advertise", "127.0.0.1:7001")
    pod = pod_from(s, {"POD_NAME": "my-queue-10", "HOSTNAME": "other-1"}, "ns-from-file\n")
    assert (pod.name, pod.statefulset, pod.ordinal) == ("my-queue-10", "my-queue", 10)
    assert pod.namespace == "ns-from-file"
    derived = settings_for_pod(s, pod)
    assert derived.raft__address == "127.0.0.1:7000"
    assert derived.advertised_http == "127.0.0.1:7001"


@pytest.mark.parametrize("name", ["", "doq", "doq-", "doq-01", "Doq-1", "-1"])
def test_a_name_that_is_not_a_statefulset_pod_is_refused(name):
    with pytest.raises(config.ConfigError, match="pod name"):
        pod_from(_settings(), {"POD_NAME": name} if name else {})


def test_a_node_id_other_than_the_pod_name_is_refused():
    s = _settings("--cluster.node_id", "node-7")
    with pytest.raises(config.ConfigError, match="differs from the pod name"):
        settings_for_pod(s, pod_from(s, {"POD_NAME": "doq-1"}))
    same = _settings("--cluster.node_id", "doq-1")
    assert settings_for_pod(same, pod_from(same, {"POD_NAME": "doq-1"})).cluster__node_id == "doq-1"


def test_prepare_refuses_join_addr_and_a_leader_service_without_pod_ip():
    with pytest.raises(config.ConfigError, match="exclude each other"):
        prepare(_settings("--cluster.join_addr", "127.0.0.1:8000"), {"POD_NAME": "doq-1"})
    with pytest.raises(config.ConfigError, match="POD_IP"):
        prepare(_settings("--cluster.leader_service", "doq"), {"POD_NAME": "doq-1"})
    parts = prepare(
        _settings("--cluster.leader_service", "doq"), {"POD_NAME": "doq-1", "POD_IP": "10.1.2.3"}
    )
    assert parts.leader_endpoint is not None and parts.leader_endpoint.me.ip == "10.1.2.3"
    assert "10.1.2.3:8000" in parts.discovery.own_addresses


async def test_the_dns_resolver_answers_with_http_addresses():
    peers = await DnsResolver("localhost", 8123).peers()
    assert "127.0.0.1:8123" in peers
    assert await DnsResolver("no-such-name.invalid", 8123).peers() == []


async def test_the_file_resolver_rereads_and_treats_junk_as_no_answer(tmp_path):
    path = tmp_path / "dns.json"
    resolver = FileResolver(str(path))
    assert await resolver.peers() == []
    path.write_text(json.dumps(["127.0.0.1:1", 5, "127.0.0.1:2"]))
    assert await resolver.peers() == ["127.0.0.1:1", "127.0.0.1:2"]
    path.write_text("{not json")
    assert await resolver.peers() == []


class _Peer:
    """A peer's /API/v1/cluster/servers on 127.0.0.1."""

    def __init__(self, servers: list[dict]) -> None:
        body = json.dumps({"servers": servers}).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Static:
    def __init__(self, peers: list[str]) -> None:
        self.answer = peers

    async def peers(self) -> list[str]:
        return list(self.answer)


def _discovery(tmp_path, ordinal: int, peers: list[str]) -> Discovery:
    pod = Pod(f"doq-{ordinal}", "doq", ordinal, "doq-internal", "test", "cluster.local")
    me = "127.0.0.1:1"
    return Discovery(pod, _Static([me, *peers]), {me}, str(tmp_path / "raft"))


async def test_only_pod_0_bootstraps_and_not_when_a_peer_reports_a_cluster(tmp_path):
    empty = _Peer([])
    member = _Peer([{"id": "doq-1", "is_leader": True, "http_addr": "doq-1.doq-internal:8000"}])
    try:
        assert await _discovery(tmp_path, 0, []).should_bootstrap()
        assert await _discovery(tmp_path, 0, [empty.address]).should_bootstrap()
        assert not await _discovery(tmp_path, 1, [empty.address]).should_bootstrap()
        found = _discovery(tmp_path, 0, [empty.address, member.address])
        assert not await found.should_bootstrap()
        assert await found.leader_address() == "doq-1.doq-internal:8000"
        assert await _discovery(tmp_path, 2, [empty.address]).leader_address() is None
    finally:
        empty.close()
        member.close()


async def test_pod_0_with_a_log_skips_the_probe_and_waits_a_bounded_time_for_silent_peers(
    tmp_path, autojump_clock
):
    silent = f"127.0.0.1:{free_port()}"  # nothing listens: it never answers
    restarted = _discovery(tmp_path, 0, [silent])
    os.makedirs(restarted.raft_dir)
    assert await restarted.should_bootstrap()  # the driver ignores it: the log decides
    os.rmdir(restarted.raft_dir)
    start = trio.current_time()
    assert await _discovery(tmp_path, 0, [silent]).should_bootstrap()
    waited = trio.current_time() - start
    assert discovery.BOOTSTRAP_WAIT_S_MAX <= waited <= discovery.BOOTSTRAP_WAIT_S_MAX + 1
