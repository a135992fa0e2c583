"""Browser fixtures: Debian's headless Chromium driven by Playwright's sync API.

Playwright never downloads a browser here: it launches ``chromium`` from PATH
(``/usr/bin/chromium``, Debian's package) through ``executable_path``.  Nothing in the
tests runs ``playwright install``.

The sync API works in this suite because pytest-twisted installs the default (epoll)
reactor, not the asyncio one.  But a sync call blocks this thread until the browser
answers, and the Twisted reactor does not run meanwhile: a server listening in the
test process itself never answers (``page.goto`` times out; checked).  So browser
tests are plain ``def test_…`` functions against servers in subprocesses (the
``channel`` fixture of ``tests/e2e``: ``ssgate serve``, ``ssgate connect``).

Without Chromium, Playwright or a CJK font, the tests skip with the reason on a
developer's machine and fail where ``SSGATE_REQUIRE_BROWSER=1`` (``.ci/run``) or
``CI`` is set.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

WAIT_MS = 30_000  # any single browser step on a loaded CI machine
CHROMIUM_ARGS = [
    # Without these Chromium reaches for Google's hosts at start and on a timer; the
    # closed network refuses them, many at a time.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    "--disable-gpu",
]

_report_key = pytest.StashKey[dict[str, pytest.TestReport]]()


def _browser_required() -> bool:
    return bool(os.environ.get("SSGATE_REQUIRE_BROWSER") or os.environ.get("CI"))


def _unavailable(reason: str) -> NoReturn:
    """Skip on a developer's machine, fail in CI: the browser test is an acceptance."""
    if _browser_required():
        pytest.fail(f"browser test cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


def _cjk_font_installed() -> bool | None:
    """True/False from fontconfig; None when fc-list is not there to ask."""
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        return None
    out = subprocess.run(
        [fc_list, ":lang=zh", "family"], capture_output=True, text=True, timeout=30, check=False
    )
    return bool(out.stdout.strip())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the item, so teardown knows whether the test failed."""
    report: pytest.TestReport = yield
    item.stash.setdefault(_report_key, {})[report.when] = report
    return report


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One headless Debian Chromium for the whole session (tests get fresh contexts)."""
    executable = shutil.which("chromium")
    if executable is None:
        _unavailable("no 'chromium' on PATH (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -e '.[test]')")
    if _cjk_font_installed() is False:
        _unavailable(
            "no CJK font: Chinese would render as boxes (apt-get install fonts-wqy-microhei)"
        )
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


NewPage = Callable[..., "Page"]


@pytest.fixture
def new_page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[NewPage]:
    """``new_page()`` → a page in a fresh context of its own (own cookies and storage),
    so an employer and an auditor in one test never share a session.  Keyword
    arguments go to ``browser.new_context`` (``ignore_https_errors=True``, say).  All
    are closed after the test; if the test failed, each open page is first saved as a
    ``failure`` screenshot next to the test's other screenshots."""
    contexts: list[BrowserContext] = []

    def _new_page(**context_options: Any) -> Page:
        context = browser.new_context(
            viewport={"width": 1280, "height": 900},
            locale="zh-CN",
            timezone_id="Asia/Shanghai",
            **context_options,
        )
        context.set_default_timeout(WAIT_MS)
        context.set_default_navigation_timeout(WAIT_MS)
        contexts.append(context)
        return context.new_page()

    yield _new_page

    reports = request.node.stash.get(_report_key, {})
    failed = any(r.failed for r in reports.values())
    for context in contexts:
        if failed:
            for page in context.pages:
                with contextlib.suppress(Exception):  # a crashed page must not hide the failure
                    _save(page, _artifact_dir(request), "failure")
        with contextlib.suppress(Exception):
            context.close()


@pytest.fixture
def page(new_page: NewPage) -> Page:
    """A page in a fresh browser context: the usual single-user case."""
    return new_page()


def _artifact_dir(request: pytest.FixtureRequest) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name).strip("_")
    return request.config.rootpath / "test-artifacts" / safe


def _save(page: Page, directory: Path, step: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    number = len(list(directory.glob("[0-9][0-9]-*.png"))) + 1
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", step).strip("-").lower() or "step"
    path = directory / f"{number:02d}-{slug}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


class Screenshots:
    """Numbered screenshots of one test: ``test-artifacts/<test name>/NN-step.png``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.taken: list[Path] = []

    def take(self, page: Page, step: str) -> Path:
        """Save the whole page as the next numbered step; *step* names the file."""
        path = _save(page, self.directory, step)
        self.taken.append(path)
        return path


@pytest.fixture
def screenshots(request: pytest.FixtureRequest) -> Screenshots:
    """The test's screenshot folder, emptied first so only this run's steps are in it."""
    directory = _artifact_dir(request)
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    return Screenshots(directory)
