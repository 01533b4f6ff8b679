"""A real browser for the responder-page tests: Debian's Chromium, driven by Playwright.

Nothing here downloads a browser (never ``playwright install``): Playwright launches the
machine's own ``chromium`` package through ``executable_path``, which ``.ci/run``
installs with apt. Where no chromium can be found (or Playwright is not installed) the
browser tests skip and say why; a chromium that is there but fails to start fails them.

One browser per test module (see :func:`browser` for why not per worker); each test gets
a fresh context, so no cookie or session leaks from one test into the next.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

#: Where Debian (``chromium``) and older Debian/Ubuntu (``chromium-browser``) put it.
CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
MISSING = ("Debian's chromium is not installed (apt-get install chromium); "
           ".ci/run installs it")
#: Wide enough for every column of the tables; phones are tested with their own size.
VIEWPORT = {"width": 1280, "height": 900}
#: A page of this app answers in milliseconds; this much is for a CI machine running
#: every other test at once. A step that waits longer has failed.
STEP_TIMEOUT_MS = 15_000


def find_chromium() -> str | None:
    """``$CHROMIUM``, else Debian's binary, else whatever ``chromium`` is on the PATH."""
    configured = os.environ.get("CHROMIUM", "").strip()
    if configured:
        return configured if Path(configured).is_file() else shutil.which(configured)
    for candidate in CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium for this module's tests (``--no-sandbox``: CI runs as root).

    Not per session: Playwright's sync API keeps its event loop marked running in the
    worker's thread until it exits, and every later test there that calls
    ``asyncio.run`` (delivery does) would fail with "cannot be called from a running
    event loop" — seen when the browser tests ran early on a worker."""
    executable = find_chromium()
    if executable is None:
        pytest.skip(MISSING)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright is not installed (pip install -r requirements.lock)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True,
                                              args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A new tab in a new context (no cookies) at a desktop size."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(STEP_TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()
