"""A cluster closed on every side, as the launcher runs it (DoqNode, in-process, on 127.0.0.1):
CURVE on the Raft links, bearer tokens on the API, HTTPS on the listener with a throwaway CA made
at test time (trustme). Joining, relaying to the leader and the clock probes all go over HTTPS
with the nodes' own credentials; plaintext to the TLS port gets no answer."""

from __future__ import annotations

import ssl

import attrs
import httpx
import pytest
import trio
import trustme

from doq.config import ConfigError
from doq.security import check
from doq.server import DoqNode
from raft_zmq.curve import ClusterKey

from .test_server import _settings

ADMIN = "admin-token-0123456789"
PRODUCER = "producer-token-0123456789"
TOKENS = f"{ADMIN} admin; {PRODUCER} produce"
DEADLINE_S = 60


@pytest.fixture
def ca(tmp_path) -> tuple[trustme.CA, str, str, str]:
    authority = trustme.CA()
    cert = authority.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile, cafile = (str(tmp_path / n) for n in ("cert.pem", "key.pem", "ca.pem"))
    cert.cert_chain_pems[0].write_to_path(certfile)
    cert.private_key_pem.write_to_path(keyfile)
    authority.cert_pem.write_to_path(cafile)
    return authority, certfile, keyfile, cafile


def secure(tmp_path, node_id: str, ca, key_file: str, **more):
    _, certfile, keyfile, cafile = ca
    return attrs.evolve(
        _settings(str(tmp_path), node_id),
        http__certfile=certfile,
        http__keyfile=keyfile,
        http__ca_file=cafile,
        http__tokens=TOKENS,
        raft__curve_key_file=key_file,
        # 1 to 2 s election timeouts: on a loaded machine 200 ms ones brought elections mid-test
        # and 503s for writes that this test expects to pass.
        raft__election_timeout_ticks=100,
        **more,
    )


async def wait_ready(client: httpx.AsyncClient, url: str) -> None:
    with trio.fail_after(DEADLINE_S):
        while True:
            try:
                if (await client.get(f"{url}/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await trio.sleep(0.02)


async def test_a_closed_cluster_joins_relays_and_probes_over_https(tmp_path, ca):
    key_file = str(tmp_path / "cluster.key")
    ClusterKey.generate().write(key_file)
    first = secure(tmp_path, "n0", ca, key_file)
    others = [
        secure(tmp_path, f"n{i}", ca, key_file, cluster__join_addr=f"127.0.0.1:{first.http__port}")
        for i in (1, 2)
    ]
    nodes = [DoqNode(s) for s in (first, *others)]
    verify = ssl.create_default_context(cafile=ca[3])
    urls = [f"https://127.0.0.1:{s.http__port}" for s in (first, *others)]
    admin = {"Authorization": f"Bearer {ADMIN}"}
    async with (
        httpx.AsyncClient(verify=verify, timeout=10) as client,
        trio.open_nursery() as nursery,
    ):
        for node in nodes:
            await nursery.start(node.run)
        for url in urls:
            await wait_ready(client, url)
        with trio.fail_after(DEADLINE_S):  # both joined (over HTTPS, with the node token)
            while len(nodes[0].raft.core.config.voters) < 3:
                await trio.sleep(0.02)
        follower = next(u for n, u in zip(nodes, urls) if not n.raft.is_leader)
        body = {"name": "q", "type": "fair", "settings": {}}
        created = await client.post(f"{follower}/API/v1/queues", json=body, headers=admin)
        assert created.status_code == 200, created.text
        message = {"priority": 1, "content": "x"}
        sent = await client.post(
            f"{follower}/API/v1/queues/q/messages",
            json=message,
            headers={"Authorization": f"Bearer {PRODUCER}"},
        )
        assert sent.status_code == 200, sent.text  # relayed over HTTPS, judged at the leader
        assert (
            await client.post(f"{follower}/API/v1/queues/q/messages", json=message)
        ).status_code == 401
        with pytest.raises(httpx.HTTPError):  # plaintext to the TLS port: no HTTP answer
            await client.get(urls[0].replace("https://", "http://") + "/livez")
        for node in nodes:
            node.stop()


def test_half_a_tls_setting_or_a_bad_tokens_value_stops_the_launcher(tmp_path, ca):
    _, certfile, _, _ = ca
    with pytest.raises(ConfigError, match="go together"):
        check(attrs.evolve(_settings(str(tmp_path), "n"), http__certfile=certfile))
    with pytest.raises(ConfigError, match="admin scope"):
        check(attrs.evolve(_settings(str(tmp_path), "n"), http__tokens=f"{PRODUCER} produce"))
    with pytest.raises(ConfigError, match="cluster key"):
        check(attrs.evolve(_settings(str(tmp_path), "n"), raft__curve_key="not-a-key"))


def test_the_settings_never_show_a_secret(tmp_path):
    key = ClusterKey.generate().secret.decode()
    settings = attrs.evolve(_settings(str(tmp_path), "n"), http__tokens=TOKENS, raft__curve_key=key)
    assert ADMIN not in repr(settings) and key not in repr(settings)
