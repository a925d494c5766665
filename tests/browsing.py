"""The suite's browser: flask-flows' public :class:`~flask_flows.testing.FlowBrowser` with
what only this suite's apps make sense of."""

from __future__ import annotations

from flask_flows.testing import FlowBrowser as PublicFlowBrowser


class FlowBrowser(PublicFlowBrowser):
    """Knows the test apps' home page, which names the logged-in user."""

    def whoami(self) -> str:
        """The test app's home page, which names the logged-in user (``last`` untouched)."""
        return self.client.get("/").text
