"""/docs without the internet, and the OpenAPI documents (issue 11, §3): a well-formed page whose
every asset the node serves itself; /openapi.json (3.1) and /openapi-3.0.json and .yaml valid
against their specifications; the Go server's operation ids and path parameter names."""

from __future__ import annotations

from html.parser import HTMLParser

import yaml
from openapi_spec_validator import validate
from openapi_spec_validator.validation import OpenAPIV30SpecValidator, OpenAPIV31SpecValidator

from doq.api.openapi import GO_OPERATION_IDS

from .support import api_app


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.seen: list[str] = []
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.seen.append(tag)
        self.urls += [value for name, value in attrs if name in ("src", "href")]
        if tag not in ("meta", "link"):  # void elements
            self.open.append(tag)

    def handle_endtag(self, tag):
        assert self.open.pop() == tag, f"</{tag}> closes something else"


async def test_the_docs_page_is_well_formed_and_loads_nothing_from_elsewhere(tmp_path):
    async with api_app(str(tmp_path)) as api:
        response = await api.client.get("/docs")
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/html")
        text = (await response.get_data()).decode()
        assert text.startswith("<!DOCTYPE html>")
        page = _Page()
        page.feed(text)
        page.close()
        assert page.open == [] and page.seen[:2] == ["html", "head"] and "body" in page.seen
        assert "http" not in text.replace("http-equiv", "")  # no CDN, no absolute URL
        assert len(page.urls) == 3
        for url in page.urls:
            asset = await api.client.get(url)
            assert asset.status_code == 200, url
            assert len(await asset.get_data()) > 0
        assert "/openapi-3.0.json" in text
        assert (await api.client.get("/docs/assets/index.html")).status_code == 404


async def test_both_documents_are_valid_and_the_yaml_forms_match(tmp_path):
    async with api_app(str(tmp_path)) as api:
        v31 = await (await api.client.get("/openapi.json")).get_json()
        v30 = await (await api.client.get("/openapi-3.0.json")).get_json()
        assert v31["openapi"].startswith("3.1") and v30["openapi"] == "3.0.3"
        validate(v31, cls=OpenAPIV31SpecValidator)
        validate(v30, cls=OpenAPIV30SpecValidator)
        as_yaml = await (await api.client.get("/openapi-3.0.yaml")).get_data()
        assert yaml.safe_load(as_yaml) == v30
        # nullable, 3.0's way: no type null, no anyOf with null left
        assert '"null"' not in str(v30).replace("'", '"')
        http_addr = v30["components"]["schemas"]["JoinRequest"]["properties"]["http_addr"]
        assert http_addr["nullable"] is True


async def test_operation_ids_and_path_parameters_are_the_go_servers(tmp_path):
    async with api_app(str(tmp_path)) as api:
        document = await (await api.client.get("/openapi.json")).get_json()
        found = {
            (method, path): operation["operationId"]
            for path, operations in document["paths"].items()
            for method, operation in operations.items()
        }
        for key, operation_id in GO_OPERATION_IDS.items():
            assert found[key] == operation_id, key
        assert found[("post", "/API/v1/queues/{queue_name}/messages")] == "enqueue"
        assert len(set(found.values())) == len(found)  # unique, as OpenAPI requires
        ack = document["paths"]["/API/v1/queues/{queue_name}/messages/{id}/ack"]["post"]
        assert [p["name"] for p in ack["parameters"] if p["in"] == "path"] == ["queue_name", "id"]


async def test_the_stream_websocket_is_in_both_documents(tmp_path):
    async with api_app(str(tmp_path)) as api:
        for url, validator in (
            ("/openapi.json", OpenAPIV31SpecValidator),
            ("/openapi-3.0.json", OpenAPIV30SpecValidator),
        ):
            document = await (await api.client.get(url)).get_json()
            validate(document, cls=validator)
            operations = document["paths"]["/API/v1/queues/{queue_name}/stream"]
            assert list(operations) == ["get"], url
            stream = operations["get"]
            assert list(stream["responses"]) == ["101"]
            assert 'docs/api.md, "Streams' in stream["description"]
            parameters = {(p["in"], p["name"]) for p in stream["parameters"]}
            assert parameters == {("path", "queue_name"), ("query", "ack")}
