"""A node short of disk room refuses writes with 507 and changes nothing; reads, /metrics and
/readyz tell the truth; writes are admitted again once room is made (issue 10, finding 3).

The free space is the test's: a ``DiskGuard`` with an injected reader, no disk is filled.
"""

from __future__ import annotations

import pytest
import trio

from doq.diskguard import DiskGuard
from raft_zmq.statemachine import StorageFull

from .support import api_app

pytestmark = pytest.mark.usefixtures("fast_path")

QUEUES = "/API/v1/queues"
RESERVE_BYTES = 1 << 20


class FakeDisk:
    def __init__(self) -> None:
        self.free_bytes = 10 * RESERVE_BYTES

    def __call__(self, _path: str) -> int:
        return self.free_bytes


def metric(text: str, name: str) -> float:
    (line,) = [line for line in text.splitlines() if line.startswith(name + " ")]
    return float(line.split()[1])


async def test_a_disk_short_of_its_reserve_refuses_writes_with_507_and_keeps_reads(tmp_path):
    disk = FakeDisk()
    guard = DiskGuard(str(tmp_path), RESERVE_BYTES, disk)
    async with api_app(str(tmp_path), service_kwargs={"disk": guard}) as api:
        client = api.client
        await client.post(QUEUES, json={"name": "q", "type": "delayed", "settings": {}})
        enqueued = await client.post(f"{QUEUES}/q/messages", json={"priority": 1, "content": "a"})
        stored = await enqueued.get_json()
        commit = api.service.raft.core.log.committed

        disk.free_bytes = RESERVE_BYTES - 1
        writes = [
            client.post(f"{QUEUES}/q/messages", json={"priority": 2, "content": "x"}),
            client.get(f"{QUEUES}/q/messages"),
            client.post(QUEUES, json={"name": "other", "type": "delayed", "settings": {}}),
            client.delete(f"{QUEUES}/q/messages/{stored['id']}"),
        ]
        for write in writes:
            refused = await write
            assert refused.status_code == 507
            assert refused.headers["Content-Type"] == "application/problem+json"
            assert int(refused.headers["Retry-After"]) > 0
            problem = await refused.get_json()
            assert problem["title"] == "Insufficient Storage"
            assert "reserve" in problem["detail"]
        assert api.service.raft.core.log.committed == commit  # nothing reached the log
        info = await (await client.get(f"{QUEUES}/q")).get_json()  # reads still work
        assert info["total"] == 1
        read = await client.get(f"{QUEUES}/q/messages/{stored['id']}")
        assert read.status_code == 200
        assert (await client.get("/readyz")).status_code == 503
        text = (await (await client.get("/metrics")).get_data()).decode()
        assert metric(text, "doq_storage_free_bytes") == RESERVE_BYTES - 1
        assert metric(text, "doq_storage_reserve_bytes") == RESERVE_BYTES
        assert metric(text, "doq_storage_writes_blocked") == 1
        assert metric(text, "doq_storage_writes_refused_total") == len(writes)

        disk.free_bytes = RESERVE_BYTES  # room made: writes are admitted again
        again = await client.post(f"{QUEUES}/q/messages", json={"priority": 2, "content": "b"})
        assert again.status_code == 200
        assert (await client.get("/readyz")).status_code == 200
        text = (await (await client.get("/metrics")).get_data()).decode()
        assert metric(text, "doq_storage_writes_blocked") == 0


async def test_the_openapi_document_names_507_for_writes_only(tmp_path):
    async with api_app(str(tmp_path)) as api:
        paths = (await (await api.client.get("/openapi.json")).get_json())["paths"]
        assert "507" in paths["/API/v1/queues/{name}/messages"]["post"]["responses"]
        assert "507" in paths["/API/v1/queues/{name}/messages"]["get"]["responses"]  # dequeue
        assert "507" not in paths["/API/v1/queues/{name}"]["get"]["responses"]


async def test_a_node_whose_store_ran_out_of_room_refuses_writes_until_its_retry_succeeds(tmp_path):
    # The disk had room when the write was admitted, but the state machine's apply then failed
    # for want of it (StorageFull): the Raft driver retries the apply; meanwhile the node answers
    # further writes 507 rather than taking proposals it cannot apply (docs/operations.md).
    async with api_app(str(tmp_path)) as api:
        client = api.client
        await client.post(QUEUES, json={"name": "q", "type": "delayed", "settings": {}})
        state, raft = api.service.state, api.service.raft
        real_apply, full = state.apply, [True]

        def apply(entries):
            if full[0]:
                raise StorageFull("no room (the test's)")
            return real_apply(entries)

        state.apply = apply
        first: list = []

        async def write_first() -> None:
            message = {"priority": 1, "content": "a"}
            first.append(await client.post(f"{QUEUES}/q/messages", json=message))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(write_first)
            with trio.fail_after(10):
                while not raft.storage_blocked:
                    await trio.sleep(0.01)
            refused = await client.post(
                f"{QUEUES}/q/messages", json={"priority": 2, "content": "b"}
            )
            assert refused.status_code == 507
            assert "retried" in (await refused.get_json())["detail"]
            assert (await client.get("/readyz")).status_code == 503
            text = (await (await client.get("/metrics")).get_data()).decode()
            assert metric(text, "doq_storage_writes_blocked") == 1
            full[0] = False  # room is made: the driver's next retry applies the entry
        assert first[0].status_code == 200
        assert not raft.storage_blocked
        info = await (await client.get(f"{QUEUES}/q")).get_json()
        assert info["total"] == 1  # the first write, once; the refused one never reached the log
