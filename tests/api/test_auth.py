"""Bearer tokens (doq/api/auth.py, doq/api/access.py): every rejection the API makes for want of
a credential, on the fast path and the routes alike, and a relayed request judged with the
client's own token at the leader."""

from __future__ import annotations

import httpx
import pytest

from doq.api.access import OPEN, Scope, requirement
from doq.api.auth import TokenError, TokenTable, tokens_from_text

from .support import api_app, followers_of, served_cluster

pytestmark = pytest.mark.usefixtures("fast_path")

ADMIN = "admin-token-0123456789"
PRODUCER = "producer-token-0123456789"
CONSUMER = "consumer-token-0123456789"
SCRAPER = "scraper-token-0123456789"
TOKENS = tokens_from_text(
    f"{ADMIN} admin; {PRODUCER} produce; {CONSUMER} consume; {SCRAPER} metrics", "test"
)
QUEUES = "/API/v1/queues"
MESSAGES = f"{QUEUES}/q/messages"
PROBLEM = "application/problem+json"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def create_queue(client, headers) -> None:
    body = {"name": "q", "type": "fair", "settings": {}}
    response = await client.post(QUEUES, json=body, headers=headers)
    assert response.status_code == 200


async def test_no_token_configured_leaves_the_api_open(tmp_path):
    async with api_app(str(tmp_path)) as h:
        await create_queue(h.client, {})
        assert (
            await h.client.post(MESSAGES, json={"priority": 1, "content": "x"})
        ).status_code == 200


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, "this route needs a bearer token"),
        ({"Authorization": "Basic YWxhZGRpbjpvcGVuc2VzYW1l"}, "this route needs a bearer token"),
        ({"Authorization": "Bearer "}, "this route needs a bearer token"),
        (bearer("wrong-token-0123456789"), "the bearer token is not valid"),
        (bearer(ADMIN[:-1]), "the bearer token is not valid"),
    ],
    ids=["none", "basic", "empty", "unknown", "prefix"],
)
async def test_a_missing_or_wrong_token_is_401_and_changes_nothing(tmp_path, headers, detail):
    async with api_app(str(tmp_path), tokens=TOKENS) as h:
        await create_queue(h.client, bearer(ADMIN))
        response = await h.client.post(
            MESSAGES, json={"priority": 1, "content": "x"}, headers=headers
        )
        assert response.status_code == 401
        assert response.headers["Content-Type"] == PROBLEM
        assert response.headers["WWW-Authenticate"].startswith('Bearer realm="doq"')
        body = await response.get_json()
        assert body["status"] == 401 and body["detail"] == detail
        assert "token-0123456789" not in await response.get_data(as_text=True)
        info = await h.client.get(f"{QUEUES}/q", headers=bearer(ADMIN))
        assert (await info.get_json())["total"] == 0


@pytest.mark.parametrize(
    ("token", "method", "path", "scope"),
    [
        (CONSUMER, "POST", MESSAGES, "produce"),
        (PRODUCER, "GET", MESSAGES, "consume"),
        (PRODUCER, "POST", QUEUES, "admin"),
        (CONSUMER, "DELETE", f"{QUEUES}/q", "admin"),
        (PRODUCER, "POST", "/db/backup", "admin"),
        (CONSUMER, "POST", "/API/v1/cluster/join", "admin"),
        (CONSUMER, "GET", "/metrics", "metrics"),
        (SCRAPER, "POST", "/API/v1/ids", "produce"),
    ],
)
async def test_a_token_without_the_scope_is_403(tmp_path, token, method, path, scope):
    async with api_app(str(tmp_path), tokens=TOKENS) as h:
        await create_queue(h.client, bearer(ADMIN))
        response = await h.client.open(
            path, method=method, json={"priority": 1, "content": "x"}, headers=bearer(token)
        )
        assert response.status_code == 403
        assert response.headers["Content-Type"] == PROBLEM
        assert f"'{scope}'" in (await response.get_json())["detail"]
        info = await h.client.get(f"{QUEUES}/q", headers=bearer(ADMIN))
        assert (await info.get_json())["total"] == 0


async def test_each_scope_does_its_work_and_admin_does_all(tmp_path):
    async with api_app(str(tmp_path), tokens=TOKENS) as h:
        c = h.client
        await create_queue(c, bearer(ADMIN))
        message = {"priority": 1, "content": "x"}
        assert (await c.post(MESSAGES, json=message, headers=bearer(PRODUCER))).status_code == 200
        assert (await c.post(MESSAGES, json=message, headers=bearer(ADMIN))).status_code == 200
        got = await c.get(MESSAGES, headers=bearer(CONSUMER))
        assert got.status_code == 200
        ack = await c.post(
            f"{MESSAGES}/{(await got.get_json())['id']}/ack", headers=bearer(CONSUMER)
        )
        assert ack.status_code == 200
        assert (await c.get("/metrics", headers=bearer(SCRAPER))).status_code == 200
        assert (
            await c.post("/API/v1/ids", json={"count": 1}, headers=bearer(PRODUCER))
        ).status_code != 401
        for open_path in ("/livez", "/readyz", "/API/v1/cluster/time", "/openapi.json"):
            assert (await c.get(open_path)).status_code == 200, open_path


def test_the_table_names_each_route_and_closes_unknown_ones():
    assert requirement("GET", "/livez") is OPEN
    assert requirement("POST", "/API/v1/queues/a%2Fb/messages") is Scope.PRODUCE
    assert requirement("GET", "/API/v1/queues/q/messages/12") is Scope.CONSUME
    assert requirement("POST", "/API/v1/queues/q/messages/12/nack") is Scope.CONSUME
    assert requirement("PUT", "/API/v1/queues/q/messages/12/priority") is Scope.ADMIN
    assert requirement("POST", "/db/restore") is Scope.ADMIN
    assert requirement("GET", "/API/v1/queues/q/messages/stream") is Scope.ADMIN  # not in the table
    assert requirement("GET", "/livez/../API/v1/queues") is Scope.ADMIN
    # Routes of the batch, long-poll and UI branches (issue 8, issue 11):
    assert requirement("GET", "/healthz") is OPEN
    assert requirement("GET", "/openapi-3.0.yaml") is OPEN
    assert requirement("POST", "/API/v1/queues/q/messages/batch") is Scope.PRODUCE
    assert requirement("POST", "/API/v1/queues/q/messages/ack") is Scope.CONSUME
    assert requirement("GET", "/API/v1/queues/q/peek") is Scope.CONSUME
    assert requirement("POST", "/API/v1/cluster/transfer") is Scope.ADMIN
    # The admin UI's page and files are open; the API calls it makes are not (docs/ui.md).
    assert requirement("GET", "/") is OPEN
    assert requirement("GET", "/ui/app.js") is OPEN
    assert requirement("GET", "/ui/../API/v1/queues") is Scope.ADMIN
    assert requirement("POST", "/") is Scope.ADMIN


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("short admin", "16 to 256"),
        ("a-long-enough-token-1 admin,root", "unknown scope"),
        ("a-long-enough-token-1 produce", "no token has the admin scope"),
        ("a-long-enough-token-1 admin; a-long-enough-token-1 produce", "the same token twice"),
        ("a-long-enough-token-1", "expected"),
        ("# only a comment", "names no token"),
    ],
)
def test_a_bad_tokens_table_is_refused_without_naming_the_token(text, message):
    with pytest.raises(TokenError) as info:
        tokens_from_text(text, "http.tokens")
    assert message in str(info.value)
    assert "long-enough" not in str(info.value)


def test_the_table_never_shows_a_token_and_knows_its_node_token():
    table = TokenTable.parse([f"{PRODUCER} produce", f"{ADMIN} admin,consume"], "f")
    assert table.node_token == ADMIN
    assert ADMIN not in repr(table)
    assert table.scopes_of(PRODUCER.encode()) == frozenset({Scope.PRODUCE})
    assert table.scopes_of(b"nope") is None


async def test_a_follower_relays_the_clients_token_and_the_leader_judges_it(tmp_path):
    async with served_cluster(str(tmp_path), tokens=TOKENS) as nodes:
        follower = followers_of(nodes)[0]
        async with httpx.AsyncClient(base_url=follower.url) as http:
            body = {"name": "q", "type": "fair", "settings": {}}
            assert (await http.post(QUEUES, json=body, headers=bearer(ADMIN))).status_code == 200
            message = {"priority": 1, "content": "x"}
            sent = await http.post(MESSAGES, json=message, headers=bearer(PRODUCER))
            assert sent.status_code == 200, sent.text
            refused = await http.post(MESSAGES, json=message, headers=bearer(CONSUMER))
            assert refused.status_code == 403
            anonymous = await http.post(MESSAGES, json=message)
            assert anonymous.status_code == 401
            info = await http.get(f"{QUEUES}/q", headers=bearer(ADMIN))
            assert info.json()["total"] == 1


async def test_no_token_reaches_the_logs(tmp_path, caplog):
    caplog.set_level("DEBUG")
    async with api_app(str(tmp_path), tokens=TOKENS) as h:
        await h.client.post(QUEUES, json={"name": "q"}, headers=bearer("guess-token-0123456789"))
        await h.client.post(QUEUES, json={"name": "q"}, headers=bearer(PRODUCER))
        await create_queue(h.client, bearer(ADMIN))
    for token in ("guess-token-0123456789", PRODUCER, ADMIN):
        assert token not in caplog.text
