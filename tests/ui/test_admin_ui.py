"""The admin UI in a real browser: Debian's chromium driven by Playwright, against a 3-node
cluster served by Hypercorn on 127.0.0.1, through a follower (so every write is relayed). It
creates a queue, enqueues through the form, sees the count and the sparkline change, dequeues,
and sees the cluster page list the three members, then moves leadership with a confirmation.

Skipped, saying why, where Playwright or the browser is missing (``make test`` installs
chromium with apt-get when it runs as root). No browser build is ever downloaded.
Set ``DOQ_UI_SCREENSHOTS=<dir>`` to save the screenshots that docs/ui.md shows.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import pytest
import trio

from ..api.support import followers_of, served_cluster

CHROMIUM = os.environ.get("DOQ_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
WAIT_MS = 15_000
VIEWPORT = {"width": 1100, "height": 620}

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is missing")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not os.access(CHROMIUM, os.X_OK),
        reason=f"no chromium at {CHROMIUM}: apt-get install chromium (make test does, as root)",
    ),
]

# The enqueue sparkline has a point above its baseline: a non-zero rate was drawn.
RAISED_SPARKLINE = """() => {
  const line = document.querySelector('[data-rate="enqueue_rps"] polyline');
  if (!line) return false;
  const ys = line.getAttribute('points').split(' ').map((p) => Number(p.split(',')[1]));
  return ys.some((y) => y < 22.5);
}"""


def _scenario(url: str, shots: Path | None, target: str) -> None:
    expect = sync_api.expect
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport=VIEWPORT)
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(url + "/")
            expect(page.locator("#served-by")).to_contain_text("served by", timeout=WAIT_MS)

            form = page.locator("#create-queue")
            form.locator("input[name=name]").fill("jobs")
            form.locator("select[name=type]").select_option("delayed")
            form.locator("button[type=submit]").click()
            row = page.locator('tr[data-queue="jobs"]')
            expect(row).to_be_visible(timeout=WAIT_MS)
            expect(row.locator('[data-count="ready"]')).to_have_text("0")

            row.locator("a").click()
            expect(page.locator("#queue-page")).to_be_visible(timeout=WAIT_MS)
            enqueue = page.locator("#enqueue")
            for priority in (3, 1, 2):
                enqueue.locator("input[name=content]").fill(f"hello {priority}")
                enqueue.locator("input[name=priority]").fill(str(priority))
                enqueue.locator("button[type=submit]").click()
                expect(page.locator("#status")).to_contain_text("Enqueued", timeout=WAIT_MS)
            ready = page.locator('#counts [data-count="ready"]')
            expect(ready).to_have_text("3", timeout=WAIT_MS)
            page.wait_for_function(RAISED_SPARKLINE, timeout=WAIT_MS)
            expect(page.locator("#peek tbody tr")).to_have_count(3, timeout=WAIT_MS)
            expect(page.locator("#peek tbody tr").first).to_contain_text("hello 1")
            if shots:
                page.evaluate("window.scrollTo(0, 0)")
                page.screenshot(path=str(shots / "ui-queue.png"))

            page.locator("#dequeue input[name=ack]").check()
            page.locator("#dequeue button[type=submit]").click()
            expect(page.locator("#dequeued")).to_contain_text("hello 1", timeout=WAIT_MS)
            expect(ready).to_have_text("2", timeout=WAIT_MS)

            page.goto(url + "/#/")
            expect(page.locator('tr[data-queue="jobs"] [data-count="ready"]')).to_have_text(
                "2", timeout=WAIT_MS
            )
            page.wait_for_function(RAISED_SPARKLINE, timeout=WAIT_MS)
            if shots:
                page.screenshot(path=str(shots / "ui-queues.png"))

            page.goto(url + "/#/cluster")
            members = page.locator("#members tbody tr")
            expect(members).to_have_count(3, timeout=WAIT_MS)
            expect(page.locator("#members")).to_contain_text("leader", timeout=WAIT_MS)
            if shots:
                page.screenshot(path=str(shots / "ui-cluster.png"))
            page.once("dialog", lambda dialog: dialog.accept())
            page.locator(f'tr[data-member="{target}"] button', has_text="Make leader").click()
            expect(page.locator("#status")).to_contain_text("Leadership is moving")
            # The role cell (the row's "Make leader" button says "leader" too).
            role = page.locator(f'tr[data-member="{target}"] td:nth-child(4)')
            expect(role).to_have_text("leader", timeout=WAIT_MS)
            assert errors == [], errors
        finally:
            browser.close()


async def test_the_admin_ui_in_a_browser_through_a_follower(tmp_path):
    shots_dir = os.environ.get("DOQ_UI_SCREENSHOTS")
    shots = Path(shots_dir) if shots_dir else None
    async with served_cluster(str(tmp_path)) as nodes:
        follower, other = followers_of(nodes)
        # The scenario saw the target's role cell say "leader" after the transfer. Its Raft state
        # is not asserted again afterwards: on a loaded machine an election may have followed
        # since (that check failed about one run in two on the shared 2-core machine).
        await trio.to_thread.run_sync(_scenario, follower.url, shots, other.node_id)


def _docs_scenario(url: str) -> int:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport=VIEWPORT)
            problems: list[str] = []
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
            page.on("request", lambda r: None if r.url.startswith(url) else problems.append(r.url))
            page.goto(url + "/docs")
            page.wait_for_selector(".opblock", timeout=WAIT_MS)
            assert problems == [], problems
            return page.locator(".opblock").count()
        finally:
            browser.close()


async def test_the_docs_page_renders_every_operation_from_the_node_alone(tmp_path):
    async with served_cluster(str(tmp_path), size=1) as (node,):
        shown = await trio.to_thread.run_sync(_docs_scenario, node.url)
        async with httpx.AsyncClient(base_url=node.url) as client:
            document = (await client.get("/openapi-3.0.json")).json()
        assert shown == sum(len(operations) for operations in document["paths"].values())
