"""A node that restarts on a full disk starts, serves reads and refuses writes with 507, then
takes writes again once room is made: never a crash loop (issue 10, finding 3).

It fills a real (small, tmpfs) disk, so it runs as root only and skips cleanly otherwise.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import attrs
import httpx
import pytest
import trio

from doq.config import Settings
from doq.server import DoqNode

from ..support import free_port

TMPFS_BYTES = 64 << 20
RESERVE_BYTES = 8 << 20
FILL_CHUNK_BYTES = 1 << 16
STARTUP_TIMEOUT_S = 20


@contextlib.contextmanager
def small_tmpfs(where: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_BYTES}", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(path: Path) -> None:
    with contextlib.suppress(OSError), open(path, "wb") as f:  # until ENOSPC
        while True:
            f.write(b"\0" * FILL_CHUNK_BYTES)
            f.flush()


async def _until(client: httpx.AsyncClient, url: str, status: int) -> httpx.Response:
    with trio.fail_after(STARTUP_TIMEOUT_S):
        while True:
            with contextlib.suppress(httpx.HTTPError):
                response = await client.get(url)
                if response.status_code == status:
                    return response
            await trio.sleep(0.02)


async def test_a_node_restarted_on_a_full_disk_serves_reads_and_refuses_writes(tmp_path):
    with small_tmpfs(tmp_path / "disk") as disk:
        settings = Settings(
            storage__data_dir=str(disk / "data"),
            cluster__node_id="solo",
            http__host="127.0.0.1",
            http__port=free_port(),
            raft__address=f"127.0.0.1:{free_port()}",
            raft__tick_ms=10,
            storage__reserve_bytes=RESERVE_BYTES,
            logging__level="warning",
        )
        url = f"http://127.0.0.1:{settings.http__port}"
        queue = f"{url}/API/v1/queues/q"
        async with httpx.AsyncClient(timeout=10) as client:
            node = DoqNode(settings)
            async with trio.open_nursery() as nursery:
                await nursery.start(node.run)
                await _until(client, f"{url}/readyz", 200)
                body = {"name": "q", "type": "delayed", "settings": {}}
                assert (await client.post(f"{url}/API/v1/queues", json=body)).status_code == 200
                message = {"priority": 1, "content": "kept"}
                assert (await client.post(f"{queue}/messages", json=message)).status_code == 200
                node.stop()

            fill(disk / "filler")
            node = DoqNode(attrs.evolve(settings, http__port=free_port()))
            url = f"http://127.0.0.1:{node.settings.http__port}"
            queue = f"{url}/API/v1/queues/q"
            async with trio.open_nursery() as nursery:
                await nursery.start(node.run)
                info = (await _until(client, queue, 200)).json()
                assert info["total"] == 1
                refused = await client.post(f"{queue}/messages", json=message)
                assert refused.status_code == 507
                assert "reserve" in refused.json()["detail"]
                assert (await client.get(f"{url}/readyz")).status_code == 503

                (disk / "filler").unlink()
                await _until(client, f"{url}/readyz", 200)
                assert (await client.post(f"{queue}/messages", json=message)).status_code == 200
                assert (await client.get(queue)).json()["total"] == 2
                node.stop()
