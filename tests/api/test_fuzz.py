"""Schema fuzzing of the running API from its own OpenAPI document (schemathesis): valid and
invalid requests to every operation never get a 5xx, and the node still answers afterwards.

The node (Raft, LMDB, Hypercorn) runs in the test's Trio loop; schemathesis is synchronous, so it
runs in a worker thread and talks to the node over 127.0.0.1. Hypothesis is derandomized, so a
failure replays. Join and leave are left out: on a one-node cluster they would add a member that
never answers or remove the only one; membership is covered by the forwarding and e2e tests.
"""

from __future__ import annotations

import itertools

import httpx
import hypothesis
import hypothesis.errors
import schemathesis
import trio
from hypothesis import HealthCheck
from schemathesis import GenerationMode

from .support import served_cluster

EXAMPLES_PER_OPERATION = 12  # per mode; modest, so tests/api stays well under a minute on 2 cores
REQUEST_TIMEOUT_S = 10


def seed(base_url: str) -> None:
    """Queues and messages under the names Hypothesis tries first ("0", 0), so that valid
    requests reach the state machine rather than stopping at 404. Idempotent."""
    with httpx.Client(base_url=base_url) as http:
        for name, type_ in (("0", "delayed"), ("00", "fair")):
            body = {"name": name, "type": type_, "settings": {}}
            assert http.post("/API/v1/queues", json=body).status_code == 200
            for message_id in range(3):
                message = {"id": str(message_id), "priority": 0, "content": "seed"}
                assert http.post(f"/API/v1/queues/{name}/messages", json=message).is_success


def fuzz(base_url: str) -> list[str]:
    """Run the fuzzer; return the requests that got a 5xx."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    schema = schema.exclude(path_regex="^/API/v1/cluster/(join|leave)$")
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 16, [op.label for op in operations]
    for operation, mode in itertools.product(
        operations, (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    ):
        seed(base_url)  # again: an earlier operation may have deleted or drained the seeds

        @hypothesis.settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
            phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        )
        @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
        def run(case) -> None:
            response = case.call(base_url=base_url, timeout=REQUEST_TIMEOUT_S)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}")

        try:
            run()
        except hypothesis.errors.Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE  # nothing to make invalid (no parameters)
    return failures


async def test_fuzzing_from_the_openapi_document_finds_no_server_error(tmp_path):
    async with served_cluster(str(tmp_path), size=1) as (node,):
        failures = await trio.to_thread.run_sync(fuzz, node.url)
        assert failures == []
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"{node.url}/livez")).status_code == 200
            created = await http.post(
                f"{node.url}/API/v1/queues", json={"name": "after", "type": "fair", "settings": {}}
            )
            assert created.status_code == 200
