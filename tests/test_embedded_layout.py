"""Flow pages inside the app's own layout (FLOWS_LAYOUT_TEMPLATE), blocks that cannot
collide with the app's, and shipped templates an app can extend.

Before: pages rendered only in flask-flows' card shell; extending an app layout lost
the stage, because stage templates filled ``content`` and ``title``, the blocks most app
layouts have; an app's ``flows/settings.html`` could not extend the package's (it
shadowed it, and ``{% extends %}`` recursed).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from browsing import FlowBrowser
from factory import MakeApp, User
from flask import Flask
from jinja2 import ChoiceLoader, DictLoader

from flask_flows.blueprints import install_default_flows
from flask_flows.options import ConfigError

PASSWORD = "correct horse battery"

#: The app's layout, as most apps write it: its own title, navigation, flash area and a
#: ``content`` block.
SITE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>{% block title %}{% endblock %} · Site</title></head>
<body>
<nav class="site-nav"><a href="/">Site home</a></nav>
<main>
{% for message in get_flashed_messages() %}<p class="site-flash">{{ message }}</p>{% endfor %}
{% block content %}{% endblock %}
</main>
<footer class="site-footer">Site footer</footer>
</body>
</html>
"""
#: Every default flow, and whether it is for logged-in users.
DEFAULT_FLOWS = {
    "default-authentication-flow": False,
    "default-enrollment-flow": False,
    "default-recovery-flow": False,
    "default-invalidation-flow": True,
    "default-password-change": True,
    "default-email-change": True,
    "default-unenrollment-flow": True,
    "default-authenticator-totp-setup": True,
    "default-authenticator-static-setup": True,
}


def use_templates(app: Flask, templates: dict[str, str]) -> None:
    """The app's own templates folder, held in memory."""
    app.jinja_loader = ChoiceLoader([DictLoader(templates)])  # type: ignore[method-assign,assignment]


@pytest.fixture
def site(make_app: MakeApp) -> Flask:
    app, _flows = make_app(FLOWS_LAYOUT_TEMPLATE="site.html")
    use_templates(app, {"site.html": SITE})
    with app.app_context():
        install_default_flows(app.extensions["flows"])
    return app


def embedded(html: str) -> bool:
    """The page is the app's layout with flask-flows' card in its content block."""
    return (
        html.count('class="site-nav"') == 1
        and 'class="site-footer"' in html
        and re.search(r'<main>.*<div class="flows-embedded">.*id="flow-stage"', html, re.S)
        is not None
    )


@pytest.mark.parametrize("slug", DEFAULT_FLOWS)
def test_default_flows_render_inside_the_app_layout(
    site: Flask, slug: str, make_user: Callable[..., User]
) -> None:
    browser = FlowBrowser(site.test_client())
    if DEFAULT_FLOWS[slug]:
        make_user("alice", password=PASSWORD)
        browser.log_in("alice", PASSWORD)
    page = browser.start(slug).text
    assert embedded(page)
    assert browser.stage_type is not None
    assert "flows/flows.css" in page and "flows/flows.js" in page
    assert "flows-shell" not in page  # not flask-flows' own page shell


def test_the_title_fills_the_app_title_block(site: Flask) -> None:
    page = site.test_client().get("/flows/default-authentication-flow/").text
    assert "<title>Sign in · Welcome · Site</title>" in page


def test_a_login_walks_through_the_app_layout(site: Flask, make_user: Callable[..., User]) -> None:
    make_user("alice", password=PASSWORD)
    browser = FlowBrowser(site.test_client())
    page = browser.start("default-authentication-flow").text
    assert embedded(page)
    assert 'name="password"' in page  # asked for on the same page
    browser.step("default-authentication-flow", uid_field="alice", password=PASSWORD)
    assert browser.redirect_target == "/"
    settings = browser.get("/flows/-/settings/").text
    assert embedded(settings)
    assert "Account settings" in settings


def test_htmx_gets_the_stage_alone(site: Flask) -> None:
    browser = FlowBrowser(site.test_client(), htmx=True)
    page = browser.start("default-authentication-flow").text
    assert 'data-stage-type="identification"' in page
    assert "site-nav" not in page and "flows-embedded" not in page


def test_the_error_page_renders_in_the_app_layout(site: Flask) -> None:
    response = site.test_client().get("/flows/no-such-flow/")
    assert response.status_code == 404
    assert embedded(response.text)


def test_another_block_name_and_a_layout_that_extends_another(make_app: MakeApp) -> None:
    app, _flows = make_app(FLOWS_LAYOUT_TEMPLATE="page.html", FLOWS_LAYOUT_BLOCK="main")
    use_templates(
        app,
        {
            "skeleton.html": SITE.replace("{% block content %}", "{% block main %}"),
            "page.html": '{% extends "skeleton.html" %}',
        },
    )
    with app.app_context():
        install_default_flows(app.extensions["flows"])
    assert embedded(app.test_client().get("/flows/default-authentication-flow/").text)


def test_a_layout_without_the_block_is_refused_by_name(make_app: MakeApp) -> None:
    app, _flows = make_app(FLOWS_LAYOUT_TEMPLATE="site.html", FLOWS_LAYOUT_BLOCK="body")
    use_templates(app, {"site.html": SITE})
    with app.app_context():
        install_default_flows(app.extensions["flows"])
    with pytest.raises(ConfigError, match=r"'site.html' has no block 'body' .*content, title"):
        app.test_client().get("/flows/default-authentication-flow/")


SETTINGS_OVERRIDE = """{% extends "flask_flows/settings.html" %}
{% block flows_settings_intro %}<p>Your account at Site.</p>{% endblock %}"""
IDENTIFICATION_OVERRIDE = """{% extends "flask_flows/stages/identification.html" %}
{% block flows_intro %}<p class="site-intro">Sign in with your Site account.</p>{% endblock %}"""


def test_an_app_extends_a_shipped_page_to_change_one_block(
    make_app: MakeApp, make_user: Callable[..., User]
) -> None:
    """The app's flows/settings.html shadows the package's, and extends it all the same."""
    app, _flows = make_app()
    use_templates(
        app,
        {
            "flows/settings.html": SETTINGS_OVERRIDE,
            "flows/stages/identification.html": IDENTIFICATION_OVERRIDE,
        },
    )
    with app.app_context():
        install_default_flows(app.extensions["flows"])
    make_user("alice", password=PASSWORD)
    browser = FlowBrowser(app.test_client())
    page = browser.start("default-authentication-flow").text
    assert '<p class="site-intro">Sign in with your Site account.</p>' in page
    assert 'name="uid_field"' in page  # the rest of the stage is still there
    browser.log_in("alice", PASSWORD)
    settings = browser.get("/flows/-/settings/").text
    assert "<p>Your account at Site.</p>" in settings
    assert "Signed in as" not in settings
    assert "Authenticators" in settings


def test_flows_css_styles_only_its_own_elements() -> None:
    """Inside an app's layout nothing of flows.css may restyle the app: every selector
    names a flows-… class, but :root, which only declares --flows-* properties, and
    htmx's own indicator rules (flask-flows turns off their inline injection, which a
    strict CSP refuses, so it must supply them for any htmx element on the page)."""
    css = (Path(__file__).parent.parent / "static" / "flows" / "flows.css").read_text()
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    outside: list[str] = []
    for prelude, body in re.findall(r"([^{}]+)\{([^{}]*)\}", css):
        prelude = prelude.strip()
        if re.fullmatch(r"(from|to|[\d.]+%)(\s*,\s*(from|to|[\d.]+%))*", prelude):
            continue  # a step of @keyframes
        for selector in prelude.split(","):
            selector = selector.strip()
            if selector == ":root":
                declared = [d.split(":")[0].strip() for d in body.split(";") if d.strip()]
                assert all(name.startswith("--flows-") for name in declared), declared
            elif ".flows-" not in selector and ".htmx-indicator" not in selector:
                outside.append(selector)
    assert outside == []


def test_the_embedded_layout_is_made_under_both_names(site: Flask) -> None:
    """An app's own flows/embedded.html may extend the shipped one as flask_flows/…:
    that one is made for the app's block names too."""
    with site.app_context():
        for name in ("flows/embedded.html", "flask_flows/embedded.html"):
            source = site.jinja_env.loader.get_source(site.jinja_env, name)[0]  # type: ignore[union-attr]
            assert "__flows_layout_block__" not in source
            assert "{% block content %}" in source


def test_a_block_name_that_is_not_one_is_refused(make_app: MakeApp) -> None:
    """A layout that picks its parent at run time cannot be checked for the block, but
    a name Jinja could not parse is refused all the same."""
    app, _flows = make_app(FLOWS_LAYOUT_TEMPLATE="page.html", FLOWS_LAYOUT_BLOCK="main-area")
    use_templates(app, {"site.html": SITE, "page.html": "{% extends ['site.html'][0] %}"})
    with app.app_context():
        install_default_flows(app.extensions["flows"])
    with pytest.raises(ConfigError, match="FLOWS_LAYOUT_BLOCK = 'main-area': not a Jinja block"):
        app.test_client().get("/flows/default-authentication-flow/")
