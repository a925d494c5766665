"""Where flow pages render, and how an app's templates reach the shipped ones.

Flow pages render in flask-flows' own page shell (``flows/base.html``) unless
``FLOWS_LAYOUT_TEMPLATE`` names the app's base template: then they render inside it, in
the block ``FLOWS_LAYOUT_BLOCK`` (with the page title in ``FLOWS_LAYOUT_TITLE_BLOCK``),
so the app's navigation, footer and flashed messages stay around them. Jinja cannot
fill a block whose name is a variable, so ``flows/embedded.html`` is written with
placeholders that :class:`TemplateLoader` replaces with the configured names; every
block flask-flows itself defines is named ``flows_…`` and cannot collide with the app's.

The loader also serves each shipped template a second time under ``flask_flows/…``: an
app's ``templates/flows/settings.html`` shadows the package's ``flows/settings.html``
(Flask searches the app first), and by extending ``flask_flows/settings.html`` it can
change one block instead of copying the page.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from flask import Flask, current_app
from jinja2 import BaseLoader, Environment, FileSystemLoader, TemplateNotFound, nodes

from .options import ConfigError

#: The full page of a flow: flask-flows' shell, or the app's layout.
SHELL = "flows/base.html"
EMBEDDED = "flows/embedded.html"
#: What an htmx request gets: the stage alone.
FRAGMENT = "flows/fragment.html"
#: Prefix under which every shipped template can be reached even where an app shadows it.
SHIPPED = "flask_flows/"

_PLACEHOLDERS = {
    "__flows_layout_block__": "FLOWS_LAYOUT_BLOCK",
    "__flows_title_block__": "FLOWS_LAYOUT_TITLE_BLOCK",
}
#: ``app.extensions`` keys: the layout template whose blocks were found to fit, and
#: whether (and for which layout) it shows flashed messages.
_CHECKED = "flows_layout_checked"
_FLASHES = "flows_layout_flashes"


def page_layout(htmx: bool = False) -> str:
    """The template a flow page extends for this request (checking, the first time,
    that the app's layout has the block it is to fill)."""
    if htmx:
        return FRAGMENT
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    base = app.config["FLOWS_LAYOUT_TEMPLATE"]
    if not base:
        return SHELL
    if app.extensions.get(_CHECKED) != base:
        _check_blocks(app, base)
        app.extensions[_CHECKED] = base
    return EMBEDDED


class TemplateLoader(BaseLoader):
    """The ``flows`` blueprint's templates: the package's folder, the same files again
    under ``flask_flows/``, and ``flows/embedded.html`` made for the app's block names."""

    def __init__(self, folder: Path) -> None:
        self.files = FileSystemLoader(str(folder))

    def get_source(
        self, environment: Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        if template.startswith(SHIPPED):
            template = "flows/" + template[len(SHIPPED) :]
        source, filename, uptodate = self.files.get_source(environment, template)
        if template != EMBEDDED:
            return source, filename, uptodate
        names = _block_names()
        for placeholder, name in names.items():
            source = source.replace(placeholder, name)
        return source, filename, lambda: uptodate() and names == _block_names()

    def list_templates(self) -> list[str]:
        found = self.files.list_templates()
        return sorted({*found, *(SHIPPED + name[len("flows/") :] for name in found)})


def _block_names() -> dict[str, str]:
    """Each placeholder of ``flows/embedded.html`` and the block name configured for it."""
    names = {}
    for placeholder, option in _PLACEHOLDERS.items():
        name = str(current_app.config[option])
        if not name.isidentifier():
            raise ConfigError(f"{option} = {name!r}: not a Jinja block name")
        names[placeholder] = name
    return names


def layout_shows_flashes(app: Flask) -> bool:
    """Whether ``FLOWS_LAYOUT_TEMPLATE`` (or a template it extends) calls
    ``get_flashed_messages``: then messages flashed by a flow show around flow pages."""
    base = app.config["FLOWS_LAYOUT_TEMPLATE"]
    if not base:
        return False
    known = app.extensions.get(_FLASHES)
    if known is None or known[0] != base:
        trees = _chain(app.jinja_env, base, set()) or []
        calls = any(
            name.name == "get_flashed_messages"
            for tree in trees
            for name in tree.find_all(nodes.Name)
        )
        known = app.extensions[_FLASHES] = (base, calls)
    return bool(known[1])


def _check_blocks(app: Flask, base: str) -> None:
    """A layout without the block to fill would render every flow page without its
    form: refuse it, naming the blocks it has."""
    found = _blocks(app.jinja_env, base, set())
    wanted = app.config["FLOWS_LAYOUT_BLOCK"]
    if found is not None and wanted not in found:
        raise ConfigError(
            f"FLOWS_LAYOUT_TEMPLATE {base!r} has no block {wanted!r} for flow pages (its"
            f" blocks: {', '.join(sorted(found)) or 'none'}); set FLOWS_LAYOUT_BLOCK"
        )


def _blocks(environment: Environment, name: str, seen: set[str]) -> set[str] | None:
    """The blocks ``name`` and the templates it extends define; ``None`` when that
    cannot be known (a template chosen at run time)."""
    trees = _chain(environment, name, seen)
    if trees is None:
        return None
    return {block.name for tree in trees for block in tree.find_all(nodes.Block)}


def _chain(environment: Environment, name: str, seen: set[str]) -> list[nodes.Template] | None:
    """The parsed template ``name`` and those it extends; ``None`` when one is chosen at
    run time."""
    if name in seen:
        return []
    seen.add(name)
    try:
        source = environment.loader.get_source(environment, name)[0]  # type: ignore[union-attr]
    except TemplateNotFound as error:
        raise ConfigError(f"FLOWS_LAYOUT_TEMPLATE {name!r}: no such template") from error
    tree = environment.parse(source)
    extends = tree.find(nodes.Extends)
    if extends is None:
        return [tree]
    if not isinstance(extends.template, nodes.Const):
        return None
    parents = _chain(environment, str(extends.template.value), seen)
    return None if parents is None else [tree, *parents]
