"""The guides in docs/ that a test follows: their app files, and importing what they make.

A guide names each file of its example app in the first line of a code block
(``# yourapp/models.py``); the tests write those blocks out and import the package, so
the guide cannot drift from what works.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DOCS = Path(__file__).parent.parent / "docs"
_FILE_BLOCK = re.compile(r"```python\n# (yourapp/\w+\.py)\n(.*?)```", re.DOTALL)


def app_files(guide: str) -> dict[str, str]:
    """The guide's app files by path (``yourapp/…``), as its code blocks give them."""
    return dict(_FILE_BLOCK.findall((DOCS / guide).read_text()))


def write_files(root: Path, files: dict[str, str]) -> None:
    for name, code in files.items():
        path = root / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(code)


@contextmanager
def importable(root: Path) -> Iterator[None]:
    """``yourapp`` importable from ``root``, and forgotten afterwards (another test may
    build another ``yourapp``)."""
    sys.path.insert(0, str(root))
    try:
        yield
    finally:
        sys.path.remove(str(root))
        for module in [m for m in sys.modules if m == "yourapp" or m.startswith("yourapp.")]:
            del sys.modules[module]
