"""The search page in a real headless browser (Debian's chromium driven by Playwright).

A person's path: open ``/``, type a query, press Enter, read the ranked hits with their matched
tokens highlighted and their contributions. A screenshot goes to ``test-output/api/``.
Chromium is installed by ``scripts/test``; without it this test fails (it never skips).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.conftest import OUTPUT, LiveServer, make_settings

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator:
    if not CHROMIUM.is_file():
        pytest.fail(
            f"{CHROMIUM} is missing: run scripts/test (it installs Debian's chromium) or apt-get install chromium"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server: LiveServer) -> Iterator:
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    # JavaScript errors fail the test; the browser's own "Failed to load resource" line for a 4xx is expected
    page.on(
        "console",
        lambda message: (
            errors.append(message.text)
            if message.type == "error" and not message.text.startswith("Failed to load resource")
            else None
        ),
    )
    page.goto(live_server.url + "/")
    yield page
    context.close()
    assert errors == [], errors


def test_search_shows_ranked_hits_with_highlighted_contributions(page) -> None:
    page.wait_for_selector("#index option", state="attached")  # the index list came from GET /v1/indexes
    assert page.locator("#index option").all_inner_texts() == ["tiny · bm25 · 8 docs", "wp · bm25-wordpiece · 8 docs"]
    page.fill("#query", "propeller slipstream lift")
    page.press("#query", "Enter")
    page.wait_for_selector("li.hit")

    hits = page.locator("li.hit")
    assert hits.count() >= 2
    first = hits.nth(0)
    assert first.locator(".hit-title").inner_text().startswith("Wing in a slipstream")
    assert "id d1" in first.locator(".hit-meta").inner_text()
    # matched words are highlighted in title and snippet...
    assert set(first.locator(".hit-title mark").all_inner_texts()) == {"slipstream"}
    assert set(first.locator(".hit-snippet mark").all_inner_texts()) == {"propeller", "slipstream", "lift"}
    # ...and each matched token shows its contribution; together they make the score
    tokens = first.locator("li.token")
    assert sorted(tokens.evaluate_all("nodes => nodes.map(n => n.dataset.token)")) == ["lift", "propel", "slipstream"]
    contributions = [float(text.strip().lstrip("+")) for text in first.locator(".contribution").all_inner_texts()]
    score = float(first.locator(".hit-meta").inner_text().split("score ")[1])
    assert sum(contributions) == pytest.approx(score, abs=0.01)
    assert contributions == sorted(contributions, reverse=True)
    assert "hits from tiny (bm25)" in page.inner_text("#status")

    OUTPUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUTPUT / "search-page.png"), full_page=True)
    assert (OUTPUT / "search-page.png").stat().st_size > 10_000


def test_other_index_and_error_message(page) -> None:
    page.wait_for_selector("#index option", state="attached")
    page.select_option("#index", "wp")
    page.fill("#query", "aeroelastic")
    page.press("#query", "Enter")
    page.wait_for_selector("li.hit")
    assert page.locator("li.hit").nth(0).locator(".hit-snippet mark").all_inner_texts() == ["Aeroelastic"]
    assert "(bm25-wordpiece)" in page.inner_text("#status")

    # a query over the API's 2048-character limit (the input's maxlength would stop a person typing it)
    page.evaluate("document.querySelector('#query').removeAttribute('maxlength')")
    page.fill("#query", "w" * 2049)
    page.press("#query", "Enter")
    page.wait_for_selector("#status.error")
    assert "at most 2048 characters" in page.inner_text("#status")
    assert page.locator("li.hit").count() == 0


def test_the_page_works_with_an_api_key(browser, tiny_bm25_index: Path) -> None:
    with LiveServer(make_settings(f"tiny={tiny_bm25_index}", api_keys=["page-key-1234"])) as server:
        context = browser.new_context()
        page = context.new_page()
        page.goto(server.url + "/")
        page.wait_for_selector("#status.error")
        assert "API key" in page.inner_text("#status")
        page.click("#auth summary")
        page.fill("#api-key", "page-key-1234")
        page.dispatch_event("#api-key", "change")
        page.wait_for_selector("#index option", state="attached")
        page.fill("#query", "buckling shells")
        page.press("#query", "Enter")
        page.wait_for_selector("li.hit")
        assert page.locator("li.hit .hit-meta").nth(0).inner_text().startswith("id d5")
        context.close()
