"""The admin UI on a node with API tokens, in a real browser (as tests/ui/test_admin_ui.py, and
skipped like it where Playwright or chromium is missing): the page asks for a token, names the
scope a read-only token lacks, asks again after a wrong one, and works with an admin token, which
it keeps in sessionStorage and sends as ``Authorization: Bearer`` on every call, never in a URL
or on the console (docs/ui.md, "Signing in")."""

from __future__ import annotations

import os
from pathlib import Path

import trio

from doq.api.auth import tokens_from_text

from ..api.support import served_cluster
from .test_admin_ui import CHROMIUM, VIEWPORT, WAIT_MS, pytestmark, sync_api

ADMIN = "admin-token-0123456789"
READ_ONLY = "scraper-token-0123456789"  # metrics only: it can read no queue
WRONG = "wrong-token-0123456789"
TOKENS = tokens_from_text(f"{ADMIN} admin; {READ_ONLY} metrics", "test")

__all__ = ["pytestmark"]  # the skip marks of the browser tests apply here too


def _sign_in(page, token: str) -> None:
    page.locator("#token").fill(token)
    page.locator("#sign-in-form button[type=submit]").click()


def _scenario(url: str, shots: Path | None) -> None:
    expect = sync_api.expect
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport=VIEWPORT)
            errors: list[str] = []
            urls: list[str] = []
            console: list[str] = []
            sent: list[str | None] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("console", lambda message: console.append(message.text))
            page.on("request", lambda request: urls.append(request.url))

            def authorization(request) -> None:
                if "/API/" in request.url:
                    sent.append(request.headers.get("authorization"))

            page.goto(url + "/")
            sign_in = page.locator("#sign-in")
            expect(sign_in).to_be_visible(timeout=WAIT_MS)
            expect(sign_in).to_contain_text("asks for a bearer token")
            if shots:
                page.screenshot(path=str(shots / "ui-sign-in.png"))

            _sign_in(page, READ_ONLY)
            status = page.locator("#status")
            expect(status).to_contain_text("lacks the 'admin' scope", timeout=WAIT_MS)
            expect(status).to_contain_text("GET /API/v1/")
            expect(sign_in).to_be_hidden()

            page.locator("#sign-out").click()
            expect(sign_in).to_contain_text("Signed out")
            _sign_in(page, WRONG)
            expect(sign_in).to_contain_text("refused the token", timeout=WAIT_MS)
            expect(sign_in).to_contain_text("not valid")

            page.on("request", authorization)
            _sign_in(page, ADMIN)
            expect(page.locator("#served-by")).to_contain_text("served by", timeout=WAIT_MS)
            expect(status).to_be_hidden()
            form = page.locator("#create-queue")
            form.locator("input[name=name]").fill("jobs")
            form.locator("button[type=submit]").click()
            expect(page.locator('tr[data-queue="jobs"]')).to_be_visible(timeout=WAIT_MS)
            assert sent and all(header == f"Bearer {ADMIN}" for header in sent), sent
            assert page.evaluate("sessionStorage.getItem('doq.token')") == ADMIN

            page.reload()  # the tab keeps its token: no sign-in again
            expect(page.locator('tr[data-queue="jobs"]')).to_be_visible(timeout=WAIT_MS)
            expect(sign_in).to_be_hidden()
            assert errors == [], errors
            for token in (ADMIN, READ_ONLY, WRONG):
                assert not any(token in u for u in urls), urls
                assert not any(token in line for line in console), console
        finally:
            browser.close()


async def test_the_admin_ui_asks_for_a_token_and_names_a_missing_scope(tmp_path):
    shots_dir = os.environ.get("DOQ_UI_SCREENSHOTS")
    shots = Path(shots_dir) if shots_dir else None
    async with served_cluster(str(tmp_path), size=1, tokens=TOKENS) as (node,):
        await trio.to_thread.run_sync(_scenario, node.url, shots)
        assert [q.name for q in await node.service.list_queues()] == ["jobs"]
