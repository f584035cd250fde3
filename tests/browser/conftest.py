"""Browser tests: Playwright driving Debian's chromium against the app on a local port.

`playwright install` cannot download browsers here, so the system chromium is launched by
path. A missing chromium or playwright is a failure, never a skip.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

CHROMIUM = os.environ.get("KOKIN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def live_server(app: Any) -> Iterator[str]:
    """Serve the app on 127.0.0.1 at a free port in a background thread; yield its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the python package playwright is not installed (pip install -e .[test])", pytrace=False)
    if not Path(CHROMIUM).exists():
        pytest.fail(f"chromium is not installed at {CHROMIUM} (apt-get install -y chromium)", pytrace=False)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def phone(browser: Any) -> Iterator[Any]:
    """A page in a phone-sized, touch-enabled context with a Japanese locale."""
    context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True,
                                  locale="ja-JP")
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def desktop(browser: Any) -> Iterator[Any]:
    """A page in a desktop-sized window with a Japanese locale."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="ja-JP")
    context.set_default_timeout(10_000)
    try:
        yield context.new_page()
    finally:
        context.close()
