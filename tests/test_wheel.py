"""The built wheel works on its own: templates, CSS and the vendored htmx come from the
installed package, not from this checkout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Runs inside the fresh virtualenv, from a folder outside the checkout.
CHECK_INSTALLED = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path

    from flask import Flask
    from flask_sqlalchemy import SQLAlchemy
    from sqlalchemy.orm import Mapped, mapped_column

    import flask_flows
    from flask_flows import Flow, FlowStageBinding, Flows, FlowsUserMixin, Stage
    from flask_flows.blueprints import install_default_flows

    db = SQLAlchemy()

    class User(db.Model, FlowsUserMixin):
        id: Mapped[int] = mapped_column(primary_key=True)

    app = Flask("wheelcheck")
    app.config.update(SECRET_KEY="k", SQLALCHEMY_DATABASE_URI="sqlite://")
    db.init_app(app)
    Flows(app, db=db, user_model=User)
    with app.app_context():
        app.extensions["flows"].create_tables()
        install_default_flows(app.extensions["flows"])
        flow = Flow(slug="hello", name="hello", title="Hello", designation="authentication")
        flow.bindings.append(FlowStageBinding(stage=Stage(name="s", type="dummy"), order=10))
        db.session.add(flow)
        db.session.commit()

    package = Path(flask_flows.__file__).resolve().parent
    # A marker in the installed CSS proves the response comes from this copy.
    installed_css = package / "static/flows/flows.css"
    installed_css.write_text(installed_css.read_text() + "/* served-from-wheel */")
    installed_htmx = package / "static/flows/vendor/htmx.min.js"

    client = app.test_client()
    page = client.get("/flows/hello/")
    login = client.get("/flows/-/login/")
    htmx = client.get("/flows/static/flows/vendor/htmx.min.js")
    css = client.get("/flows/static/flows/flows.css")
    with app.app_context():
        template = app.jinja_env.get_template("flows/base.html").filename
    print(json.dumps({
        "package": str(package),
        "template": template,
        "page_status": page.status_code,
        "page": page.get_data(as_text=True),
        "login_location": login.headers.get("Location"),
        "htmx_status": htmx.status_code,
        "htmx_is_installed_copy": htmx.data == installed_htmx.read_bytes(),
        "htmx_size": len(htmx.data),
        "css_status": css.status_code,
        "css": css.get_data(as_text=True),
    }))
    """
)


def run(*command: str | Path, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    result = subprocess.run(
        [str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.mark.slow
def test_installed_wheel_serves_its_own_templates_and_assets(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "build", "--wheel", "--outdir", dist, ROOT, cwd=tmp_path)
    [wheel] = dist.glob("flask_flows-*.whl")

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", wheel, cwd=tmp_path)

    script = tmp_path / "check_installed.py"
    script.write_text(CHECK_INSTALLED)
    report = json.loads(run(python, script, cwd=tmp_path))

    package = Path(report["package"])
    assert package.is_relative_to(venv), f"flask_flows imported from {package}, not the venv"
    assert not package.is_relative_to(ROOT)
    assert Path(report["template"]).is_relative_to(package)
    assert report["page_status"] == 200
    assert 'data-stage-type="dummy"' in report["page"]
    assert 'name="csrf_token"' in report["page"]
    assert "/flows/static/flows/vendor/htmx.min.js" in report["page"]
    # The default flows' YAML ships inside the package.
    assert report["login_location"] == "/flows/default-authentication-flow/"
    assert report["htmx_status"] == 200
    assert report["htmx_is_installed_copy"]
    assert report["htmx_size"] > 10_000
    assert report["css_status"] == 200
    assert report["css"].endswith("/* served-from-wheel */")
    assert "--flows-accent" in report["css"]
