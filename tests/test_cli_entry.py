"""Installing flask-flows must never take an app's ``flask`` command down.

Before: the ``flask.commands`` entry point imported flask-flows' models, so when that
import failed (SQLAlchemy older than 2.0.33, a broken install), every ``flask`` command
of every app in the virtualenv died, ``flask --help`` included.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def flask(tmp_path: Path, *args: str, broken: bool) -> subprocess.CompletedProcess[str]:
    """``flask *args`` in an empty folder (no app), optionally with an SQLAlchemy that
    cannot be imported, as an old or broken one would be."""
    environ = {key: value for key, value in os.environ.items() if not key.startswith("FLASK_")}
    if broken:
        shadow = tmp_path / "shadow" / "sqlalchemy"
        shadow.mkdir(parents=True, exist_ok=True)
        (shadow / "__init__.py").write_text(
            'raise ImportError("simulated: this SQLAlchemy cannot be used")\n'
        )
        environ["PYTHONPATH"] = str(tmp_path / "shadow")
    return subprocess.run(  # noqa: S603  (this interpreter, fixed arguments)
        [sys.executable, "-m", "flask", *args],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.slow
def test_the_apps_cli_works_when_flask_flows_cannot_be_imported(tmp_path: Path) -> None:
    listing = flask(tmp_path, "--help", broken=True)
    assert listing.returncode == 0, listing.stderr
    assert "flows" in listing.stdout
    assert "Traceback" not in listing.stderr

    ours = flask(tmp_path, "flows", "--help", broken=True)
    assert ours.returncode == 1
    assert "flask-flows cannot be loaded: ImportError: simulated" in ours.stderr
    assert "Traceback" not in ours.stderr


@pytest.mark.slow
def test_the_flows_commands_are_there_when_it_can(tmp_path: Path) -> None:
    result = flask(tmp_path, "flows", "--help", broken=False)
    assert result.returncode == 0, result.stderr
    for command in ("init", "apply", "export", "list", "create-user", "invite"):
        assert command in result.stdout
