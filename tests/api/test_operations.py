"""Operations, cluster listing, documents and every error shape through the real app."""

from __future__ import annotations

import io
import json
import logging

import pytest
import yaml
from quart.datastructures import FileStorage

from doq.service import TooLargeError, UnavailableError

from .support import api_app

pytestmark = pytest.mark.usefixtures("fast_path")

QUEUES = "/API/v1/queues"


class ServiceWith:
    """The real service with some methods replaced, to make it fail on purpose."""

    def __init__(self, **replacements):
        self._replacements = replacements

    def __call__(self, service):
        self._service = service
        return self

    def __getattr__(self, name):
        if name in self._replacements:
            return self._replacements[name]
        return getattr(self._service, name)


def upload(data: bytes) -> dict:
    return {"file": FileStorage(io.BytesIO(data), filename="backup.db", name="file")}


async def test_backup_then_restore_brings_the_state_back(tmp_path):
    async with api_app(str(tmp_path)) as api:
        await api.client.post(QUEUES, json={"name": "q", "type": "delayed", "settings": {}})
        await api.client.post(f"{QUEUES}/q/messages", json={"priority": 1, "content": "kept"})
        backup = await api.client.post("/db/backup", json={"since": 0})
        assert backup.status_code == 200
        assert backup.headers["Content-Type"] == "application/octet-stream"
        data = await backup.get_data()
        await api.client.post(f"{QUEUES}/q/messages", json={"priority": 2, "content": "lost"})
        restored = await api.client.post("/db/restore", files=upload(data))
        assert restored.status_code == 200
        assert (await restored.get_json())["status"] == "SUCCEDED"
        info = await (await api.client.get(f"{QUEUES}/q")).get_json()
        assert info["total"] == 1


async def test_restore_refuses_what_is_not_a_backup_and_changes_nothing(tmp_path):
    async with api_app(str(tmp_path)) as api:
        await api.client.post(QUEUES, json={"name": "q", "type": "delayed", "settings": {}})
        garbage = await api.client.post("/db/restore", files=upload(b"not a snapshot"))
        assert garbage.status_code == 422
        assert "snapshot" in (await garbage.get_json())["errors"][0]["message"]
        assert (await api.client.get(f"{QUEUES}/q")).status_code == 200
        no_body = await api.client.post("/db/restore", data=b"")
        assert no_body.status_code == 400
        no_file = await api.client.post("/db/restore", form={"other": "x"})
        assert no_file.status_code == 422
        assert (await no_file.get_json())["errors"][0]["location"] == "body.file"


async def test_backup_body_is_validated(tmp_path):
    async with api_app(str(tmp_path)) as api:
        assert (await api.client.post("/db/backup", data=b"")).status_code == 400
        negative = await api.client.post("/db/backup", json={"since": -1})
        assert negative.status_code == 422


async def test_livez_and_readyz(tmp_path):
    async with api_app(str(tmp_path)) as api:
        live = await api.client.get("/livez")
        assert live.status_code == 200 and (await live.get_json())["status"] == "OK"
        ready = await api.client.get("/readyz")
        assert ready.status_code == 200 and (await ready.get_json())["status"] == "READY"


async def test_readyz_is_503_with_retry_after_while_not_ready(tmp_path):
    not_ready = ServiceWith(is_ready=lambda: False)
    async with api_app(str(tmp_path), service_wrapper=not_ready) as api:
        response = await api.client.get("/readyz")
        assert response.status_code == 503 and response.headers["Retry-After"] == "1"
        assert response.headers["Content-Type"] == "application/problem+json"


async def test_servers_lists_members_with_leader_and_suffrage(tmp_path):
    async with api_app(str(tmp_path)) as api:
        body = await (await api.client.get("/API/v1/cluster/servers")).get_json()
        (server,) = body["servers"]
        assert server["id"] == "node-0" and server["is_leader"] is True
        assert server["suffrage"] == "Voter" and server["leader_addr"] == server["addr"]
        assert server["http_addr"] == "127.0.0.1:8000"


async def test_join_of_a_member_and_leave_of_a_stranger_are_idempotent(tmp_path):
    async with api_app(str(tmp_path)) as api:
        (me,) = api.service.servers()
        join = await api.client.post(
            "/API/v1/cluster/join",
            json={"id": "node-0", "addr": me.raft_address, "http_addr": "127.0.0.1:8123"},
        )
        assert join.status_code == 200
        assert await join.get_json() == {
            "$schema": "http://localhost/schemas/JoinedBody.json",
            "id": "node-0",
            "addr": me.raft_address,
        }
        assert api.service.servers()[0].http_address == "127.0.0.1:8123"
        leave = await api.client.post("/API/v1/cluster/leave", json={"id": "node-9"})
        assert (await leave.get_json())["id"] == "node-9"
        missing_addr = await api.client.post("/API/v1/cluster/join", json={"id": "node-1"})
        assert missing_addr.status_code == 422


async def test_metrics_expose_queue_http_and_raft_figures(tmp_path):
    async with api_app(str(tmp_path)) as api:
        await api.client.post(QUEUES, json={"name": "q", "type": "delayed", "settings": {}})
        await api.client.post(f"{QUEUES}/q/messages", json={"priority": 1, "content": "x"})
        await api.client.get(f"{QUEUES}/q/messages?ack=true")
        text = (await (await api.client.get("/metrics")).get_data()).decode()
        for line in (
            'doq_queues_enqueue_total{queue_name="q"} 1.0',
            'doq_queues_dequeue_total{queue_name="q"} 1.0',
            'doq_queues_ack_total{queue_name="q"}',
            'doq_queues_nack_total{queue_name="q"} 0.0',
            'doq_queues_messages{queue_name="q"} 0.0',
            'doq_queues_unacked_messages{queue_name="q"} 0.0',
            'doq_queues_ready_messages{queue_name="q"} 0.0',
            "doq_raft_state 2.0",
            "doq_raft_transport_sent_total",
            'doq_http_requests_total{method="POST",route="/API/v1/queues/<name>/messages",'
            'status="200"} 1.0',
            "doq_http_request_duration_seconds_bucket",
        ):
            assert line in text, line
        for gauge in ("term", "commit_index", "applied_index", "log_entries", "snapshot_index"):
            assert f"doq_raft_{gauge} " in text


async def test_metrics_can_be_switched_off(tmp_path):
    async with api_app(str(tmp_path), prometheus_enabled=False) as api:
        assert (await api.client.get("/metrics")).status_code == 404


async def test_openapi_documents_every_endpoint_in_json_and_yaml(tmp_path):
    async with api_app(str(tmp_path)) as api:
        document = await (await api.client.get("/openapi.json")).get_json()
        expected = {
            "/API/v1/queues": {"get", "post"},
            "/API/v1/queues/{queue_name}": {"get", "put", "delete"},
            "/API/v1/queues/{queue_name}/messages": {"get", "post"},
            "/API/v1/queues/{queue_name}/messages/{id}": {"get", "delete"},
            "/API/v1/queues/{queue_name}/messages/{id}/ack": {"post"},
            "/API/v1/queues/{queue_name}/messages/{id}/nack": {"post"},
            "/API/v1/queues/{queue_name}/messages/{id}/touch": {"post"},
            "/API/v1/queues/{queue_name}/messages/{id}/priority": {"put"},
            "/API/v1/ids": {"post"},
            "/API/v1/cluster/join": {"post"},
            "/API/v1/cluster/leave": {"post"},
            "/API/v1/cluster/servers": {"get"},
            "/db/backup": {"post"},
            "/db/restore": {"post"},
            "/livez": {"get"},
            "/readyz": {"get"},
        }
        for path, methods in expected.items():
            assert set(document["paths"][path]) == methods, path
        components = document["components"]["schemas"]
        assert {"QueueSettingsInput", "ServerBody", "ErrorDetail", "ErrorModel"} <= set(components)
        create = document["paths"]["/API/v1/queues"]["post"]
        ref = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert ref == "#/components/schemas/CreateQueueRequest"
        as_yaml = await (await api.client.get("/openapi.yaml")).get_data()
        assert yaml.safe_load(as_yaml) == document
        docs = await api.client.get("/docs")
        assert docs.status_code == 200 and b"swagger" in (await docs.get_data()).lower()


async def test_each_schema_url_serves_a_json_schema(tmp_path):
    async with api_app(str(tmp_path)) as api:
        response = await api.client.get("/schemas/ServersBody.json")
        schema = json.loads(await response.get_data())
        assert schema["properties"]["servers"]["items"]["$ref"] == "/schemas/ServerBody.json"
        assert (await api.client.get("/schemas/NoSuchThing.json")).status_code == 404


async def test_unknown_path_and_method_are_problems(tmp_path):
    async with api_app(str(tmp_path)) as api:
        unknown = await api.client.get("/API/v2/queues")
        assert unknown.status_code == 404
        assert unknown.headers["Content-Type"] == "application/problem+json"
        assert (await unknown.get_json())["title"] == "Not Found"
        wrong = await api.client.patch(QUEUES)
        assert wrong.status_code == 405 and "POST" in wrong.headers["Allow"]
        assert (await wrong.get_json())["status"] == 405


async def test_a_body_above_the_limit_is_413(tmp_path):
    async with api_app(str(tmp_path), max_body_bytes=1024) as api:
        await api.client.post(QUEUES, json={"name": "q", "type": "delayed", "settings": {}})
        big = await api.client.post(
            f"{QUEUES}/q/messages", json={"priority": 1, "content": "x" * 2000}
        )
        assert big.status_code == 413
        assert big.headers["Content-Type"] == "application/problem+json"


async def test_service_failures_map_to_503_413_and_unexpected_ones_to_a_logged_500(
    tmp_path, caplog
):
    async def shedding(*args, **kwargs):
        raise UnavailableError("the leader is shedding load", retry_after_s=3)

    async def too_large(*args, **kwargs):
        raise TooLargeError("larger than a log entry may be")

    async def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    faulty = ServiceWith(enqueue=shedding, create_queue=too_large, list_queues=broken)
    async with api_app(str(tmp_path), service_wrapper=faulty) as api:
        busy = await api.client.post(f"{QUEUES}/q/messages", json={"priority": 1, "content": "x"})
        assert busy.status_code == 503 and busy.headers["Retry-After"] == "3"
        assert (await busy.get_json())["detail"] == "the leader is shedding load"
        large = await api.client.post(QUEUES, json={"name": "q", "type": "fair", "settings": {}})
        assert large.status_code == 413
        with caplog.at_level(logging.ERROR, logger="doq.api"):
            crash = await api.client.get(QUEUES)
        assert crash.status_code == 500
        assert crash.headers["Content-Type"] == "application/problem+json"
        assert "a bug" in caplog.text
