"""The admin web UI (docs/ui.md): ``/`` and its static files under ``/ui/``, from the package
``doq.ui`` (no CDN, no build step). Every node serves it; the page calls the API of the node that
served it, which relays to the leader what only the leader answers."""

from __future__ import annotations

import functools
from importlib import resources

from quart import Quart, Response
from quart_schema import hide

from doq.api.problems import ApiProblem

UI_ASSETS = {
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
# The page and its files change only with the package, but a browser should see a new version
# at once after an upgrade: revalidate each time (cheap: a few kilobytes).
UI_CACHE_CONTROL = "no-cache"


@functools.cache
def _static(name: str) -> bytes:
    return (resources.files("doq.ui") / "static" / name).read_bytes()


def register_ui_routes(app: Quart) -> None:
    @hide
    async def ui_page() -> Response:
        return Response(
            _static("index.html"),
            content_type="text/html; charset=utf-8",
            headers={"Cache-Control": UI_CACHE_CONTROL},
        )

    @hide
    async def ui_asset(asset: str) -> Response:
        content_type = UI_ASSETS.get(asset)
        if content_type is None:
            raise ApiProblem(404, "no such UI file")
        headers = {"Cache-Control": UI_CACHE_CONTROL}
        return Response(_static(asset), content_type=content_type, headers=headers)

    app.add_url_rule("/", view_func=ui_page, methods=["GET"])
    app.add_url_rule("/ui/<asset>", view_func=ui_asset, methods=["GET"])
