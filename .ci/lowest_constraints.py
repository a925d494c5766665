"""Print pip constraints that pin each runtime dependency of pyproject.toml to its lower
bound (``name>=X`` becomes ``name==X``), for `make test-lowest`."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

BOUND = re.compile(r"^\s*([A-Za-z0-9_.\[\]-]+?)\s*>=\s*([0-9][0-9A-Za-z.]*)\s*$")


def main() -> None:
    project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        match = BOUND.match(requirement)
        if match is None:
            sys.exit(f"no plain lower bound to pin in {requirement!r}: declare one as name>=X.Y.Z")
        name, lowest = match.groups()
        print(f"{name.split('[')[0]}=={lowest}")


if __name__ == "__main__":
    main()
