"""``/docs`` that works without the internet, and the OpenAPI document in version 3.0.

The docs page used to load Swagger UI from a CDN (quart-schema's default), so it was blank in an
air-gapped cluster, and its HTML had no ``<html>`` element. The page here is a complete HTML
document whose script and stylesheet come from the package ``swagger-ui-bundle`` (PyPI, Swagger
UI 4.15.5, Apache-2.0), served under ``/docs/assets/``. That Swagger UI reads OpenAPI 3.0, so the
page loads ``/openapi-3.0.json`` (doq/api/openapi30.py), which the Go server (Huma) also serves,
with ``/openapi-3.0.yaml``; ``/openapi.json`` and ``/openapi.yaml`` stay 3.1.
"""

from __future__ import annotations

import functools
from typing import Any

import msgspec
import yaml
from quart import Quart, Response
from quart_schema import hide
from swagger_ui_bundle import swagger_ui_path

from doq.api.openapi30 import to_openapi_30
from doq.api.problems import ApiProblem

DOCS_PATH = "/docs"
DOCS_ASSETS_PATH = "/docs/assets"
# Only what the page loads: the package also holds source maps and other bundles.
DOCS_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
ASSET_CACHE_MAX_AGE_S = 86_400  # the assets change only with the package

DOCS_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} - API documentation</title>
<link rel="icon" type="image/png" href="{assets}/favicon-32x32.png">
<link rel="stylesheet" href="{assets}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({{
  url: "/openapi-3.0.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
}});
</script>
</body>
</html>
"""


@functools.cache
def _asset(name: str) -> bytes:
    return (swagger_ui_path / name).read_bytes()


def register_docs_routes(app: Quart, title: str) -> None:
    page = DOCS_PAGE.format(title=title, assets=DOCS_ASSETS_PATH)

    def document_30() -> dict[str, Any]:
        return to_openapi_30(app.extensions["QUART_SCHEMA"].openapi_provider.schema())

    @hide
    async def docs() -> Response:
        return Response(page, content_type="text/html; charset=utf-8")

    @hide
    async def docs_asset(asset: str) -> Response:
        content_type = DOCS_ASSETS.get(asset)
        if content_type is None:
            raise ApiProblem(404, "no such docs asset")
        headers = {"Cache-Control": f"public, max-age={ASSET_CACHE_MAX_AGE_S}"}
        return Response(_asset(asset), content_type=content_type, headers=headers)

    @hide
    async def openapi_30_json() -> Response:
        return Response(msgspec.json.encode(document_30()), content_type="application/json")

    @hide
    async def openapi_30_yaml() -> Response:
        # Through JSON first, so status-code keys are strings in YAML as they are in JSON.
        as_json = msgspec.json.decode(msgspec.json.encode(document_30()))
        text = yaml.safe_dump(as_json, sort_keys=False, allow_unicode=True)
        return Response(text, content_type="application/yaml")

    app.add_url_rule(DOCS_PATH, view_func=docs, methods=["GET"])
    app.add_url_rule(f"{DOCS_ASSETS_PATH}/<asset>", view_func=docs_asset, methods=["GET"])
    app.add_url_rule("/openapi-3.0.json", view_func=openapi_30_json, methods=["GET"])
    app.add_url_rule("/openapi-3.0.yaml", view_func=openapi_30_yaml, methods=["GET"])
