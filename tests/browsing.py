"""The suite's browser: flask-flows' public :class:`~flask_flows.testing.FlowBrowser` with
what only this suite's apps make sense of."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from flask.testing import FlaskClient

from flask_flows.plan import PENDING_USER, PLANS_KEY
from flask_flows.sealing import seal, unseal
from flask_flows.testing import FlowBrowser as PublicFlowBrowser


class FlowBrowser(PublicFlowBrowser):
    """Knows the test apps' home page, which names the logged-in user."""

    def whoami(self) -> str:
        """The test app's home page, which names the logged-in user (``last`` untouched)."""
        return self.client.get("/").text


#: A plan's random nonce where a page names a stage's URL (``?step=<nonce>.<entry>``).
_PLAN_NONCE = re.compile(r"(step=)[\w-]+(?=\.)")


def without_nonces(text: str) -> str:
    """``text`` with the plans' random nonces in stage URLs blanked: two plans' pages
    compare equal when they show the same thing."""
    return _PLAN_NONCE.sub(r"\1NONCE", text)


def plan_context(client: FlaskClient, slug: str) -> dict[str, Any]:
    """The unsealed context of the plan ``client``'s session holds for ``slug``."""
    with client.session_transaction() as session:
        sealed = session[PLANS_KEY][slug]["c"]
    with client.application.app_context():
        context = unseal(sealed, slug, PENDING_USER)
    assert context is not None, f"the plan for {slug!r} does not unseal"
    return context


def edit_plan_context(
    client: FlaskClient, slug: str, edit: Callable[[dict[str, Any]], None]
) -> None:
    """Change the context of ``client``'s plan for ``slug``, sealed again with the app's
    key: what someone holding ``SECRET_KEY`` could do."""
    context = plan_context(client, slug)
    edit(context)
    with client.application.app_context():
        sealed = seal(context, slug, PENDING_USER)
    with client.session_transaction() as session:
        plans = dict(session[PLANS_KEY])
        plans[slug] = {**plans[slug], "c": sealed}
        session[PLANS_KEY] = plans
