"""The web page in headless Chromium (Playwright): search by id, see the tiles, click one to search from it."""

from __future__ import annotations

import shutil
import threading
import time
import urllib.request

import pytest

from tests.conftest import free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make browser)")


@pytest.fixture(scope="module")
def server(app):
    import uvicorn

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=1)
            break
        except OSError:
            time.sleep(0.2)
    yield url
    srv.should_exit = True
    thread.join(timeout=10)


def test_search_click_and_screenshot(server, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server + "/")
            page.fill("#id", "12")
            page.fill("#k", "8")
            page.fill("#dedup", "0")
            page.click("#go")
            page.wait_for_selector("figure.tile", timeout=60_000)
            tiles = page.locator("figure.tile")
            assert tiles.count() == 8
            page.wait_for_function("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)",
                                   timeout=60_000)
            first_ids = [tiles.nth(i).get_attribute("data-id") for i in range(tiles.count())]
            assert "12" not in first_ids
            clicked = first_ids[2]
            tiles.nth(2).click()
            page.wait_for_function(f"document.getElementById('id').value === '{clicked}' && "
                                   f"document.querySelector('#query div') && "
                                   f"document.querySelector('#query div').textContent.includes('id {clicked}')",
                                   timeout=60_000)
            page.wait_for_selector("figure.tile", timeout=60_000)
            assert page.locator("#status").inner_text().endswith("results")
            shot = tmp_path / "gallery.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            page.fill("#id", "999999")
            page.click("#go")
            page.wait_for_selector("#status.error", timeout=30_000)
            assert "not in the archive" in page.locator("#status").inner_text()
            assert not errors, errors
        finally:
            browser.close()
    print(f"screenshot: {shot}")
