"""The built documentation in a real headless browser: pages load cleanly and the search works.

The site is built here (``sphinx-build -W`` into a temporary folder), served from 127.0.0.1 (the
search fetches result pages, which browsers refuse over ``file://``) and opened in Debian's
``chromium`` driven by Playwright (Playwright's own browser download is not used). A page passes
when it loads without a console error, an uncaught exception, a failed request, or any request to
another host (the site must work offline). Skipped only where no chromium is
installed; CI installs it.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = [
    "--no-sandbox",  # chromium refuses to start as root with its sandbox
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium() -> str | None:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


CHROMIUM = _chromium()
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed (apt-get install chromium)"),
    pytest.mark.slow,  # builds the whole site first (about 10 s of CPU)
    pytest.mark.timeout(600),  # pytest-timeout's per-test limit counts the build; a loaded CI machine needs more
]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docs_html")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-n", "-q", "docs", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"sphinx-build failed:\n{done.stdout}\n{done.stderr}"
    return out


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # the test's output is pytest's, not a request log
        pass


@pytest.fixture(scope="module")
def server(site: Path):
    handler = functools.partial(_QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium_profile")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield context
        finally:
            context.close()


class PageProblems:
    """Everything that went wrong while a page loaded."""

    def __init__(self, page, origin: str) -> None:
        self.origin = origin
        self.items: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.items.append(f"console: {m.text}"))
        page.on("pageerror", lambda e: self.items.append(f"exception: {e}"))
        page.on("requestfailed", lambda r: self.items.append(f"failed request: {r.url} ({r.failure})"))
        page.route("**/*", self._offline_only)

    def _offline_only(self, route) -> None:
        url = route.request.url
        if url.startswith((self.origin + "/", "data:", "about:", "blob:")):
            route.continue_()
        else:
            self.items.append(f"request leaves the machine: {url}")
            route.abort()


def _open(browser, origin: str, path: str):
    page = browser.new_page()
    problems = PageProblems(page, origin)
    page.goto(f"{origin}/{path}", wait_until="load")
    page.wait_for_load_state("networkidle")
    return page, problems


def check_index_page(browser, server: str) -> None:
    page, problems = _open(browser, server, "index.html")
    assert "jaxnet" in page.title()
    assert page.locator("a[href='getting-started.html']").count() >= 1
    assert page.locator("a[href='api/index.html']").count() >= 1
    assert problems.items == [], f"index.html: {problems.items}"
    page.close()


def check_api_page(browser, server: str) -> None:
    page, problems = _open(browser, server, "api/jaxnet.nn.html")
    assert page.locator("dt[id='jaxnet.nn.Dense']").count() == 1  # the full entry of a layer
    assert page.locator("table.autosummary").count() == 1  # the summary of every public name
    assert "fully connected" in page.locator("dt[id='jaxnet.nn.Dense'] + dd").inner_text()
    assert problems.items == [], f"api/jaxnet.nn.html: {problems.items}"
    page.close()


def check_search(browser, server: str, query: str, expected_page: str, *, type_it: bool = False) -> None:
    """Search from the URL (as a link to a search does) or by typing into the sidebar's search box."""
    if type_it:
        page, problems = _open(browser, server, "index.html")
        page.fill("form[role='search'] input[name='q']", query)
        page.press("form[role='search'] input[name='q']", "Enter")
        page.wait_for_url("**/search.html?q=*")
    else:
        page, problems = _open(browser, server, f"search.html?q={query}")
    results = page.locator("#search-results ul.search li")
    results.first.wait_for(timeout=30_000)
    hrefs = [results.nth(i).locator("a").first.get_attribute("href") or "" for i in range(results.count())]
    assert any(expected_page in href for href in hrefs), f"search for {query!r} found {hrefs}"
    assert problems.items == [], f"search.html?q={query}: {problems.items}"
    page.close()


def test_site_in_a_browser(server: str, browser):
    """One test, so that parallel workers (pytest -n) build the site once, not once each."""
    check_index_page(browser, server)
    check_api_page(browser, server)
    check_search(browser, server, "Dense", "api/jaxnet.nn.html")
    check_search(browser, server, "fit_ensemble", "api/jaxnet.train.html", type_it=True)
