"""The leader endpoint's loop against a stand-in API (in memory under Trio's MockClock, and the
HTTP stand-in through lightkube): a leader publishes itself, a deposed one withdraws at once
without erasing a successor, a follower makes no calls, and API errors are retried with backoff
without ending the loop."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from doq.kubernetes import endpoint
from doq.kubernetes.endpoint import LeaderEndpoint, Published, Target

from .fake_api import FakeKubernetesApi

ME = Target("doq-1", "test", "10.0.0.2", 8000)


class MemoryApi:
    def __init__(self) -> None:
        self.named: str | None = None
        self.version = 0
        self.exists = False
        self.fail_next = 0
        self.calls = 0

    async def read(self) -> Published | None:
        self._call()
        return Published(str(self.version), self.named) if self.exists else None

    async def write(self, leader: Target | None, resource_version: str | None) -> None:
        self._call()
        if (resource_version is None) == self.exists or (
            resource_version is not None and resource_version != str(self.version)
        ):
            raise RuntimeError("409 conflict")
        self.exists = True
        self.version += 1
        self.named = leader.pod_name if leader else None

    def _call(self) -> None:
        self.calls += 1
        if self.fail_next:
            self.fail_next -= 1
            raise OSError("connection refused")


async def _until(predicate, timeout_s: float = 30.0) -> None:
    with trio.fail_after(timeout_s):
        while not predicate():
            await trio.sleep(0.01)


async def test_a_leader_publishes_itself_and_withdraws_at_once_when_deposed(autojump_clock):
    api = MemoryApi()
    leading = [True]
    publisher = LeaderEndpoint(api, ME)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(publisher.run, lambda: leading[0])
        await _until(lambda: api.named == "doq-1")
        leading[0] = False
        start = trio.current_time()
        await _until(lambda: api.named is None)
        assert trio.current_time() - start <= 2 * endpoint.LEADERSHIP_POLL_S
        calls = api.calls
        await trio.sleep(10 * endpoint.RESYNC_S)
        assert api.calls == calls, "a follower known not to be named calls nothing"
        nursery.cancel_scope.cancel()


async def test_a_deposed_leader_does_not_erase_its_successor(autojump_clock):
    api = MemoryApi()
    api.exists, api.named, api.version = True, "doq-1", 7
    publisher = LeaderEndpoint(api, ME)
    publisher._named = True
    # The successor writes between our read and our write: our write conflicts, and on the
    # retry we read the successor's name and leave it.
    original_read = api.read

    async def read_then_successor_writes() -> Published | None:
        seen = await original_read()
        api.named, api.version = "doq-2", api.version + 1
        api.read = original_read  # only once
        return seen

    api.read = read_then_successor_writes
    async with trio.open_nursery() as nursery:
        nursery.start_soon(publisher.run, lambda: False)
        await _until(lambda: publisher._named is False)
        nursery.cancel_scope.cancel()
    assert api.named == "doq-2"
    assert publisher.errors == 1


async def test_a_leader_overwritten_by_a_stale_leader_takes_the_slice_back(autojump_clock):
    api = MemoryApi()
    publisher = LeaderEndpoint(api, ME)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(publisher.run, lambda: True)
        await _until(lambda: api.named == "doq-1")
        api.named, api.version = "doq-0", api.version + 1  # a deposed leader that did not know
        start = trio.current_time()
        await _until(lambda: api.named == "doq-1")
        assert trio.current_time() - start <= endpoint.RESYNC_S + 1
        nursery.cancel_scope.cancel()


async def test_api_errors_are_retried_with_growing_backoff(autojump_clock):
    api = MemoryApi()
    api.fail_next = 6
    publisher = LeaderEndpoint(api, ME)
    async with trio.open_nursery() as nursery:
        start = trio.current_time()
        nursery.start_soon(publisher.run, lambda: True)
        await _until(lambda: api.named == "doq-1", timeout_s=120)
        nursery.cancel_scope.cancel()
    assert publisher.errors == 6
    # 0.1 + 0.2 + ... + 3.2 s, each times a jitter in [0.5, 1.5): at least half of 6.3 s.
    assert trio.current_time() - start >= 0.5 * 6.3


async def test_lightkube_against_the_http_stand_in(tmp_path, monkeypatch):
    """The real client: create, replace with the version read, withdraw; 500s retried."""
    pytest.importorskip("lightkube", reason="the doq[kubernetes] extra is not installed")
    api = FakeKubernetesApi()
    api.start()
    try:
        config = tmp_path / "kubeconfig"
        config.write_text(api.kubeconfig("test"))
        monkeypatch.setenv("KUBECONFIG", str(config))
        api.fail_next = 2
        publisher = endpoint.leader_endpoint_for("doq", "test", ME)
        leading = [True]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(publisher.run, lambda: leading[0])
            await _until(lambda: api.named("test", "doq") == "doq-1")
            body = api.slice("test", "doq")
            assert body is not None
            assert body["metadata"]["labels"]["kubernetes.io/service-name"] == "doq"
            assert body["addressType"] == "IPv4"
            assert body["endpoints"][0]["addresses"] == ["10.0.0.2"]
            assert body["ports"] == [{"name": "http", "port": 8000, "protocol": "TCP"}]
            leading[0] = False
            await _until(lambda: api.named("test", "doq") is None)
            nursery.cancel_scope.cancel()
        assert publisher.errors == 2 and api.failed == 2
    finally:
        api.stop()
