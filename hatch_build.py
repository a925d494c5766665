"""Build steps of the package: vendor htmx, compile the message catalogues.

htmx is pinned in ``package.json``/``package-lock.json`` and installed by npm, so its
version is reviewed like any other dependency and the repository holds no copied
JavaScript. The built wheel and sdist carry the file, so installing flask-flows
never needs Node.js; only building it from a git checkout does.

The translations are kept as ``.po`` files (text, reviewed like code); their compiled
``.mo`` files, which gettext reads, are made here (with Babel, a build requirement) for
every build, an editable install included, and are never committed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

CATALOGUES = Path("flask_flows", "translations")
HTMX_SOURCE = Path("node_modules", "htmx.org", "dist", "htmx.min.js")
HTMX_VENDORED = Path("static", "flows", "vendor", "htmx.min.js")
NPM_CI = ["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"]


class VendorHtmxHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        root = Path(self.root)
        vendored = root / HTMX_VENDORED
        if not _is_unpacked_sdist(root) or not vendored.is_file():
            vendored.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(_htmx_from_npm(root), vendored)
        if self.target_name == "sdist":
            # The vendor folder is git-ignored; artifacts bypass that so the sdist
            # builds into a wheel without npm.
            build_data["artifacts"].append(HTMX_VENDORED.as_posix())
        for compiled in _compile_catalogues(root):
            # Git-ignored too: listed, so that the wheel carries them.
            build_data["artifacts"].append(compiled.relative_to(root).as_posix())


def _compile_catalogues(root: Path) -> list[Path]:
    """Compile every ``<locale>/LC_MESSAGES/*.po`` under :data:`CATALOGUES` next to it
    (untranslated and fuzzy entries are left out, so English shows for them)."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    compiled = []
    for source in sorted((root / CATALOGUES).glob("*/LC_MESSAGES/*.po")):
        with source.open("rb") as po:
            catalog = read_po(po, locale=source.parent.parent.name)
        target = source.with_suffix(".mo")
        with target.open("wb") as mo:
            write_mo(mo, catalog)
        compiled.append(target)
    return compiled


def _is_unpacked_sdist(root: Path) -> bool:
    return (root / "PKG-INFO").is_file()


def _htmx_from_npm(root: Path) -> Path:
    source = root / HTMX_SOURCE
    if source.is_file():
        return source
    npm = shutil.which("npm")
    if npm is None:
        msg = (
            f"Building flask-flows needs {HTMX_SOURCE}, which comes from npm, but npm is not"
            " installed. Install Node.js and npm (Debian: apt-get install nodejs npm), or"
            " build from an sdist, which already contains the file."
        )
        raise RuntimeError(msg)
    subprocess.run([npm, *NPM_CI[1:]], cwd=root, check=True)  # noqa: S603
    if not source.is_file():
        msg = f"'{' '.join(NPM_CI)}' finished but {source} is missing; check package.json."
        raise RuntimeError(msg)
    return source
