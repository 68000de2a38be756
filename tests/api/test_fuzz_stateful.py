"""Stateful schema fuzzing (schemathesis): sequences of calls chained through the links that
schemathesis infers from the OpenAPI document (a queue created, then its messages enqueued,
dequeued, acked...), against a running node. No call may get a 5xx and the node must still
answer afterwards. The budget is bounded for the suite; ``DOQ_STATEFUL_EXAMPLES`` raises it for
the longer run recorded in docs/reliability.md.

Join and leave are left out, as in test_fuzz.py: on a one-node cluster they would add a member
that never answers or remove the only one.
"""

from __future__ import annotations

import contextlib
import os
import urllib.parse

import httpx
import hypothesis
import schemathesis
import trio
from hypothesis import HealthCheck

from doq.api.errors import ApiProblem
from doq.api.serving import parse_wait_query
from doq.longpoll import WAIT_S_MAX

from .support import served_cluster

EXAMPLES = int(os.environ.get("DOQ_STATEFUL_EXAMPLES", "15"))
STEPS_MAX = 8
WAIT_S_FUZZ_MAX = 1
REQUEST_TIMEOUT_S = WAIT_S_MAX + 10  # a long poll may still wait WAIT_S_MAX


def reset(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=REQUEST_TIMEOUT_S) as http:
        for queue in http.get("/API/v1/queues").json()["queues"]:
            name = urllib.parse.quote(queue["name"], safe="")
            assert http.delete(f"/API/v1/queues/{name}").status_code < 500


def run_state_machine(base_url: str) -> tuple[list[str], int]:
    """Run the state machine; return the calls that got a 5xx, and how many calls were made."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    schema = schema.exclude(path_regex="^/API/v1/cluster/(join|leave)$")
    failures: list[str] = []
    calls = [0]
    base = schema.as_state_machine()

    class Machine(base):  # type: ignore[valid-type, misc]
        def setup(self) -> None:
            # Every sequence starts from an empty node: which calls are possible depends on what
            # earlier answers produced, and Hypothesis needs the same start to replay a sequence.
            reset(base_url)

        def before_call(self, case) -> None:
            # A valid long poll on an empty queue waits its whole ?wait= (up to 20 s): keep the
            # waits short so that the budget goes to calls, not to sleeping.
            if case.query and "wait" in case.query:
                with contextlib.suppress(ApiProblem):
                    if parse_wait_query(str(case.query["wait"])) > WAIT_S_FUZZ_MAX:
                        case.query["wait"] = str(WAIT_S_FUZZ_MAX)

        def get_call_kwargs(self, case):
            return {"base_url": base_url, "timeout": REQUEST_TIMEOUT_S}

        def validate_response(self, response, case, **kwargs) -> None:
            calls[0] += 1
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}")

    Machine.run(
        settings=hypothesis.settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS_MAX,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
    )
    return failures, calls[0]


async def test_stateful_fuzzing_finds_no_server_error(tmp_path):
    async with served_cluster(str(tmp_path), size=1) as (node,):
        failures, calls = await trio.to_thread.run_sync(run_state_machine, node.url)
        assert failures == []
        assert calls >= EXAMPLES  # the machine really called the API
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"{node.url}/livez")).status_code == 200
