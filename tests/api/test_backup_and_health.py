"""/healthz answers like /livez, and /db/backup's since and X-Last-Version (issue 11, §4): only
complete backups exist, so since must be 0 (else a 422 that says so); the backup's version, the
log index it holds, comes as a header before the body."""

from __future__ import annotations

import httpx
import pytest

from .support import api_app, leader_of, served_cluster

pytestmark = pytest.mark.usefixtures("fast_path")


async def test_healthz_answers_like_livez(tmp_path):
    async with api_app(str(tmp_path)) as api:
        livez = await api.client.get("/livez")
        healthz = await api.client.get("/healthz")
        assert healthz.status_code == livez.status_code == 200
        assert await healthz.get_json() == await livez.get_json()


async def test_a_backup_since_a_version_is_a_422_that_says_only_full_backups_exist(tmp_path):
    async with api_app(str(tmp_path)) as api:
        response = await api.client.post("/db/backup", json={"since": 7})
        assert response.status_code == 422
        (error,) = (await response.get_json())["errors"]
        assert error["location"] == "body.since" and "complete backups only" in error["message"]


async def test_the_backups_version_is_a_header_before_the_body_and_grows(tmp_path):
    async with served_cluster(str(tmp_path), size=1) as nodes:
        url = leader_of(nodes).url
        async with httpx.AsyncClient(base_url=url) as client:
            async with client.stream("POST", "/db/backup", json={"since": 0}) as first:
                assert first.status_code == 200
                version = int(first.headers["X-Last-Version"])  # before any body is read
                assert version == leader_of(nodes).service.raft.applied_index
                assert len(await first.aread()) > 0
            await client.post("/API/v1/queues", json={"name": "q", "type": "delayed"})
            second = await client.post("/db/backup", json={"since": 0})
            assert int(second.headers["X-Last-Version"]) > version
