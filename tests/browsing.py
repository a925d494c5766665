"""A test client that steps through flows like a browser: it carries the CSRF token and
the plan step of the last page it saw, with or without htmx headers."""

from __future__ import annotations

import re
from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

_CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
_STEP = re.compile(r'name="flow_step" type="hidden" value="([^"]*)"')
_STAGE = re.compile(r'data-stage-type="([a-z_]+)"')


class FlowBrowser:
    """Wraps Flask's test client; ``htmx=True`` sends ``HX-Request`` like htmx does."""

    def __init__(self, client: FlaskClient, htmx: bool = False) -> None:
        self.client = client
        self.htmx = htmx
        self.last: TestResponse | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"HX-Request": "true"} if self.htmx else {}

    def get(self, url: str, **kwargs: Any) -> TestResponse:
        self.last = self.client.get(url, headers=self.headers, **kwargs)
        return self.last

    def post(self, url: str, data: dict[str, Any], **kwargs: Any) -> TestResponse:
        self.last = self.client.post(url, data=data, headers=self.headers, **kwargs)
        return self.last

    def start(self, slug: str, next: str | None = None) -> TestResponse:
        query = f"?next={next}" if next is not None else ""
        return self.get(f"/flows/{slug}/{query}")

    def submit(self, slug: str, **fields: Any) -> TestResponse:
        """Submit the stage shown last, adding its CSRF token and step token."""
        assert self.last is not None, "open the flow first"
        data = {"csrf_token": self.csrf_token(), "flow_step": self.step_token(), **fields}
        return self.post(f"/flows/{slug}/", data)

    def step(self, slug: str, **fields: Any) -> TestResponse:
        """Submit the current stage; a plain browser follows the post/redirect/get 303 back
        to the flow URL (but not the redirect that leaves the flow)."""
        response = self.submit(slug, **fields)
        if (
            not self.htmx
            and response.status_code == 303
            and response.headers["Location"] == f"/flows/{slug}/"
        ):
            return self.follow()
        return response

    def log_in(
        self, username: str, password: str, slug: str = "login", next: str | None = None
    ) -> TestResponse:
        """Run an identification → password → … login flow with ``username``/``password``."""
        self.start(slug, next=next)
        self.step(slug, uid_field=username)
        return self.step(slug, password=password)

    def fresh(self) -> FlowBrowser:
        """Another browser of the same kind on the same app, with no cookies (another
        device, or someone else)."""
        return FlowBrowser(self.client.application.test_client(), htmx=self.htmx)

    def whoami(self) -> str:
        """The test app's home page, which names the logged-in user (``last`` untouched)."""
        return self.client.get("/").text

    def open_link(self, url: str) -> TestResponse:
        """Open an emailed link as its reader does: the page it shows, then a click on its
        "Continue" button (a plain form POST, htmx or not). Returns the POST's response
        (the 303 into the flow), or the GET's when the link cannot be used."""
        self.last = self.client.get(url)
        if self.last.status_code != 200:
            return self.last
        assert "Continue from your email" in self.last.text, self.last.text
        self.last = self.client.post(url, data={"csrf_token": self.csrf_token()})
        return self.last

    def follow(self) -> TestResponse:
        """Follow the redirect (303 or HX-Redirect) of the last response."""
        assert self.last is not None
        target = self.last.headers.get("HX-Redirect") or self.last.headers.get("Location")
        assert target, f"no redirect in {self.last.status} response"
        return self.get(target)

    def csrf_token(self) -> str:
        assert self.last is not None
        match = _CSRF.search(self.last.text)
        assert match, "no CSRF token on the last page"
        return match.group(1)

    def step_token(self) -> str:
        assert self.last is not None
        match = _STEP.search(self.last.text)
        assert match, "no flow_step on the last page"
        return match.group(1)

    @property
    def stage_type(self) -> str | None:
        """The stage type shown by the last response (``None`` if it is not a stage)."""
        assert self.last is not None
        match = _STAGE.search(self.last.text)
        return match.group(1) if match else None

    @property
    def redirect_target(self) -> str | None:
        assert self.last is not None
        return self.last.headers.get("HX-Redirect") or self.last.headers.get("Location")
