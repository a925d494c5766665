"""Fixtures for the browser suite: Debian's Chromium driven by Playwright, the example app
served on loopback from a background thread (one server per test module), and a
:class:`Walker` that steps through flows the way a person does, with or without JavaScript.

Chromium is not downloaded by Playwright: the suite launches ``/usr/bin/chromium`` (Debian's
``chromium`` package). Without it the tests skip, except with ``CI=true``, where they fail.
"""

from __future__ import annotations

import itertools
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from factory import FAST_ARGON2, close_connections
from flask import Flask
from werkzeug.serving import make_server

from example_app import create_app, db

CHROMIUM = os.environ.get("FLOWS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PASSWORD = "correct horse battery"
#: htmx's settings on a flow page, and its history cache (flows.js sets them).
HTMX_SETTINGS = """() => [htmx.config.historyCacheSize, htmx.config.selfRequestsOnly,
  htmx.config.allowScriptTags, htmx.config.includeIndicatorStyles,
  localStorage.getItem("htmx-history-cache")]"""
#: The WCAG 2.2 A/AA rules of axe-core.
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]


def unavailable(reason: str) -> None:
    """Skip on a developer machine; fail in CI (as ``unavailable`` in tests/conftest.py)."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: skipping is not allowed)")
    pytest.skip(reason)


# -- the browser --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """One headless Chromium for the whole session; each test opens its own contexts."""
    if not (os.access(CHROMIUM, os.X_OK) or shutil.which(CHROMIUM)):
        unavailable(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("Playwright is not installed (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def axe(chromium: Any) -> Any:
    """axe-core, injected into a page to check it (needs the page's JavaScript on)."""
    from axe_playwright_python.sync_playwright import Axe

    return Axe()


# -- the app ------------------------------------------------------------------------------


class LiveApp:
    """The example app on ``http://127.0.0.1:<port>``, with helpers that set up data."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> LiveApp:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=10)

    def __call__(self, path: str = "/") -> str:
        return self.url + path

    def flow(self, slug: str, next: str = "/") -> str:
        return self(f"/flows/{slug}/?next={next}")

    def create_user(self, username: str, password: str = PASSWORD) -> None:
        with self.app.app_context():
            self.app.extensions["flows"].user_store.create(
                username=username, email=f"{username}@example.com", password=password
            )
            db.session.commit()


@pytest.fixture(scope="module")
def live_app(tmp_path_factory: pytest.TempPathFactory, smtp_server: Any) -> Iterator[LiveApp]:
    """The example app as a deployment runs it: a SQLite file, mail over SMTP (to the
    session's loopback server), and a threaded WSGI server. One per test module."""
    yield from serve_example_app(tmp_path_factory, smtp_server)


def serve_example_app(
    tmp_path_factory: pytest.TempPathFactory, smtp_server: Any, **config: Any
) -> Iterator[LiveApp]:
    """Serve the example app with ``config`` on top of a deployment's settings."""
    instance = tmp_path_factory.mktemp("instance")
    app = create_app(
        {
            **FAST_ARGON2,
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{instance / 'browser.sqlite3'}",
            "FLOWS_MAIL_BACKEND": None,
            **smtp_server.config,
            **config,
        },
        instance_path=str(instance),
    )
    live = LiveApp(app)
    app.config["FLOWS_MAIL_BASE_URL"] = live.url  # mailed links lead back to this server
    live.start()
    yield live
    live.stop()
    close_connections([app])


_names = itertools.count(1)


@pytest.fixture
def user(live_app: LiveApp) -> str:
    """A new user (password :data:`PASSWORD`) for this test; returns the username."""
    username = f"user{next(_names)}"
    live_app.create_user(username)
    return username


# -- pages --------------------------------------------------------------------------------


@pytest.fixture(params=[True, False], ids=["js", "nojs"])
def js(request: pytest.FixtureRequest) -> bool:
    """Every walk runs twice: htmx swaps with JavaScript on, plain posts with it off."""
    return bool(request.param)


@pytest.fixture
def new_context(chromium: Any) -> Iterator[Callable[..., Any]]:
    """Opens browser contexts (separate cookie jars: other devices); closes them after."""
    contexts: list[Any] = []

    def new(js: bool = True, **options: Any) -> Any:
        options.setdefault("viewport", {"width": 1000, "height": 800})
        context = chromium.new_context(
            java_script_enabled=js, color_scheme="light", reduced_motion="reduce", **options
        )
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context

    yield new
    for context in contexts:
        context.close()


@pytest.fixture
def walker(
    new_context: Callable[..., Any], live_app: LiveApp, js: bool, axe: Any
) -> Callable[..., Walker]:
    """``walker()`` opens a new device (browser context) with the test's JavaScript setting."""

    def make(**options: Any) -> Walker:
        return Walker(new_context(js=js, **options).new_page(), live_app, js=js, axe=axe)

    return make


class Walker:
    """A person with a browser. With JavaScript on it checks, at every stage, that the page
    was swapped by htmx rather than loaded again, and runs axe-core on it; with JavaScript
    off it checks that every stage was a plain form post."""

    def __init__(self, page: Any, live: LiveApp, *, js: bool, axe: Any) -> None:
        self.page = page
        self.live = live
        self.js = js
        self.axe = axe
        self.posts: list[Any] = []
        page.on("request", self._record)

    def _record(self, request: Any) -> None:
        if request.method == "POST":
            self.posts.append(request)

    # -- moving around

    def goto(self, path: str) -> Walker:
        self.page.goto(self.live(path))
        return self

    def start(self, slug: str, next: str = "/") -> Walker:
        """Open a flow and wait for its first stage; with JS, mark the page (see below)."""
        self.page.goto(self.live.flow(slug, next))
        self.stage_loaded()
        return self

    def open_link(self, url: str, continue_label: str = "Continue") -> Walker:
        """Open an emailed link and press the "Continue" button of the page it shows."""
        self.page.goto(url)
        button = self.page.get_by_role("button", name=continue_label)
        button.wait_for()
        if self.js:
            self.check_a11y()
        with self.page.expect_navigation():
            button.click()
        return self

    def log_in(self, username: str, password: str = PASSWORD) -> Walker:
        """Walk the default login flow to the home page (a user without a second factor)."""
        self.start("default-authentication-flow")
        return self.finish("/", uid_field=username, password=password)

    def stage_loaded(self, stage_type: str | None = None) -> None:
        """A stage page has just been loaded (not swapped): set the marker that every later
        htmx swap must keep."""
        type_is = f"='{stage_type}'" if stage_type else ""
        self.page.wait_for_selector(f"#flow-stage [data-stage-type{type_is}]")
        if self.js:
            self.page.evaluate("window.__flowsMarker = 1")
            self.check_a11y()

    @property
    def stage(self) -> Any:
        return self.page.locator("#flow-stage")

    def field(self, name: str) -> Any:
        return self.stage.locator(f"[name='{name}']")

    def fill(self, **fields: str) -> Walker:
        for name, value in fields.items():
            self.field(name).fill(value)
        return self

    def submit(self, expect: str | None = None, **fields: str) -> Walker:
        """Fill in ``fields``, press the stage's submit button and wait for stage type
        ``expect`` to be shown (again, for an error) — or for nothing when ``expect`` is
        None: the flow then leaves, and :meth:`finish` waits for where it lands."""
        self.fill(**fields)
        before = len(self.posts)
        button = self.stage.locator("form.flows-form button[type=submit]").first
        if self.js:
            self._mark_current()
            button.click()
        elif expect is not None:
            with self.page.expect_navigation():
                button.click()
        else:
            button.click()
        if expect is not None:
            self.expect_stage(expect)
            self._check_post(self.posts[before])
        return self

    def expect_stage(self, stage_type: str) -> None:
        self.page.wait_for_selector(
            f"#flow-stage [data-stage-type='{stage_type}']:not([data-walked])"
        )
        if self.js:
            assert self.marker_kept(), "the stage was a full page load, not an htmx swap"
            self.check_a11y()

    def finish(self, path: str = "/", **fields: str) -> Walker:
        """Fill in ``fields``, submit the last stage and wait for the flow's redirect to
        ``path``. With JS the marker must have survived every stage until this, the one full
        page load."""
        if self.js:
            assert self.marker_kept(), "a stage was a full page load, not an htmx swap"
        self.submit(**fields)
        self.wait_for_path(path)
        if self.js:
            assert not self.marker_kept(), "the flow's end should load the target page"
        return self

    def wait_for_path(self, path: str) -> None:
        """Wait until the page is at ``path``. A navigation another one cut short (a
        double submit without JavaScript: the second POST aborts the first) is not the
        end: the newer one is waited for."""
        from playwright.sync_api import Error as PlaywrightError

        for _ in range(2):
            try:
                self.page.wait_for_url(lambda url: urlsplit(url).path == path)
                return
            except PlaywrightError as error:
                if "ERR_ABORTED" not in str(error):
                    raise
        self.page.wait_for_url(lambda url: urlsplit(url).path == path)

    def focused(self) -> str:
        """The name of the focused field, else its tag and type (``button:submit``)."""
        return str(
            self.page.evaluate(
                "(e => e.name || `${e.tagName.toLowerCase()}:${e.type || ''}`)"
                "(document.activeElement)"
            )
        )

    def marker_kept(self) -> bool:
        return bool(self.page.evaluate("window.__flowsMarker === 1"))

    def _mark_current(self) -> None:
        """Tag the stage on screen, so waiting for the next one never matches it (without
        JS, :meth:`submit` waits for the navigation instead)."""
        self.page.evaluate(
            "document.querySelectorAll('#flow-stage [data-stage-type]')"
            ".forEach(node => node.setAttribute('data-walked', ''))"
        )

    def _check_post(self, request: Any) -> None:
        if self.js:
            assert request.headers.get("hx-request") == "true", request.url
            assert not request.is_navigation_request(), request.url
        else:
            assert "hx-request" not in request.headers, request.url
            assert request.is_navigation_request(), request.url

    # -- reading the page

    def text(self) -> str:
        return str(self.page.locator("body").inner_text())

    def logged_in_as(self) -> str | None:
        """The username the example app's header shows, after loading its home page."""
        self.page.goto(self.live("/"))
        signed_in = self.page.locator(".bar nav strong")
        return str(signed_in.inner_text()) if signed_in.count() else None

    def check_a11y(self) -> None:
        """axe-core at the WCAG 2.2 A/AA tags: no violations on the page as it is now."""
        results = self.axe.run(self.page, options={"runOnly": {"type": "tag", "values": WCAG_TAGS}})
        violations = results.response["violations"]
        assert not violations, _describe(self.page.url, violations)

    def screenshot(self, name: str, full_page: bool = True) -> None:
        """Save docs/screenshots/<name>.png, only when FLOWS_SCREENSHOTS=1 (CI must not
        rewrite the docs), and only from the JavaScript walk (the page as most people see it)."""
        if self.js and os.environ.get("FLOWS_SCREENSHOTS") == "1":
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)


def _describe(url: str, violations: list[dict[str, Any]]) -> str:
    lines = [f"axe found {len(violations)} violation(s) on {url}:"]
    for violation in violations:
        lines.append(f"- {violation['id']} ({violation['impact']}): {violation['help']}")
        lines.extend(
            f"    {node['target']}: {node['failureSummary']}" for node in violation["nodes"]
        )
    return "\n".join(lines)
