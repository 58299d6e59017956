"""/docs in a real headless Chromium (Debian's, via Playwright): every operation renders, and
the page asks nothing of any host but the server (no CDN, no font, no script)."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from typing import Any

from tests.conftest import InThreadServer


def test_docs_render_every_path_without_leaving_the_server(browser: Any, app_server: InThreadServer) -> None:
    with urllib.request.urlopen(app_server.url + "/openapi.json", timeout=30) as response:
        document = json.load(response)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    requested: list[str] = []
    blocked: list[str] = []
    console: list[str] = []

    def only_the_server(route: Any) -> None:
        url = route.request.url
        requested.append(url)
        if urllib.parse.urlsplit(url).hostname == "127.0.0.1":
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    context.route("**/*", only_the_server)
    page.on("console", lambda message: console.append(message.text))
    page.goto(app_server.url + "/docs")
    page.wait_for_load_state("networkidle")

    for group in ("collector", "api", "operations"):
        assert page.locator(f"section[data-group={group}] h2").is_visible(), group
    for path, methods in document["paths"].items():
        for method in methods:
            operation = page.locator(f'section[data-method="{method.upper()}"][data-path="{path}"]')
            assert operation.count() == 1, (method, path)
            heading = operation.locator("h3").inner_text()
            assert heading == f"{method.upper()} {path}", heading
            assert operation.locator("text=Responses").count() == 1
    filters = page.locator('section[data-method="GET"][data-path="/api/v1/apps/{app}/compare"] td code')
    assert "include | exclude | only" in filters.all_inner_texts(), "enums are spelled out"
    header = page.evaluate("getComputedStyle(document.querySelector('header')).backgroundColor")
    assert header == "rgb(29, 36, 48)", "the self-hosted stylesheet applies under the CSP"

    assert blocked == [], blocked
    assert requested and all(url.startswith(app_server.url + "/") for url in requested), requested
    assert not [line for line in console if "Content Security Policy" in line], console
    context.close()
