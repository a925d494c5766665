"""Attacks from outside: the app on a threaded server on loopback, and visitors that speak
real HTTP (their own cookies, no JavaScript unless they send htmx's header)."""

from __future__ import annotations

import copy
import functools
import http.client
import http.cookiejar
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask
from werkzeug.serving import make_server

_HIDDEN = re.compile(r'<input[^>]*name="(csrf_token|flow_step)"[^>]*value="([^"]*)"')


@contextmanager
def serving(app: Flask) -> Iterator[str]:
    """Serve ``app`` as a deployment's threads do (werkzeug's server, which also checks
    that every header value is Latin-1, as the HTTP spec asks); yields its base URL."""
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        thread.join(timeout=10)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


class _FromAddress(urllib.request.HTTPHandler):
    """Connects from a given loopback address (any of 127.0.0.0/8 works on Linux), so the
    server sees visitors from several client IPs."""

    def __init__(self, address: str) -> None:
        super().__init__()
        self.address = address

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        connection = functools.partial(http.client.HTTPConnection, source_address=(self.address, 0))
        return self.do_open(connection, req)  # type: ignore[arg-type]


class Visitor:
    """One person's browser over HTTP, from ``address``. ``htmx=True`` sends
    ``HX-Request`` and, as htmx does, does not follow redirects by itself."""

    def __init__(self, base: str, *, htmx: bool = False, address: str = "127.0.0.1") -> None:
        self.base = base
        self.htmx = htmx
        self.address = address
        self.headers = {"HX-Request": "true"} if htmx else {}
        self.cookies = http.cookiejar.CookieJar()
        handlers: list[urllib.request.BaseHandler] = [
            urllib.request.HTTPCookieProcessor(self.cookies),
            _FromAddress(address),
        ]
        if htmx:
            handlers.append(_NoRedirects())
        self.opener = urllib.request.build_opener(*handlers)
        self.page = ""
        self.response_headers: dict[str, str] = {}

    def replay(self, *, address: str | None = None) -> Visitor:
        """Another browser holding a copy of this one's cookies and page as they are now,
        from ``address`` (the same one by default): a captured cookie, replayed."""
        twin = Visitor(self.base, htmx=self.htmx, address=address or self.address)
        for cookie in self.cookies:
            twin.cookies.set_cookie(copy.copy(cookie))
        twin.page = self.page
        return twin

    def open(self, path: str, fields: dict[str, str] | None = None) -> int:
        data = urllib.parse.urlencode(fields).encode() if fields is not None else None
        # Only ever http://127.0.0.1:<port> of a test server.
        request = urllib.request.Request(self.base + path, data=data, headers=self.headers)  # noqa: S310
        try:
            with self.opener.open(request, timeout=60) as response:
                self.page = response.read().decode()
                self.response_headers = dict(response.headers)
                return int(response.status)
        except urllib.error.HTTPError as error:
            self.page = error.read().decode()
            self.response_headers = dict(error.headers)
            return int(error.code)

    def submit(self, path: str, **fields: str) -> int:
        """Post the stage form of the page shown last (its CSRF token and plan step)."""
        return self.open(path, {**dict(_HIDDEN.findall(self.page)), **fields})
