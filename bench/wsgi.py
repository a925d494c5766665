"""The flask-flows app that ``gunicorn wsgi:app`` serves in the scale-out benchmark.

Every worker and every server builds the same app from the environment: the database
URL, the argon2 profile, and (from ``common``) the same ``SECRET_KEY``, so a plan signed
into the cookie by one can be read by another.
"""

from __future__ import annotations

import os

from common import MAIL_BASE_URL, PROFILES, SECRET_KEY, argon2_config, create_test_app

app, _ = create_test_app(
    os.environ["BENCH_DATABASE_URL"],
    TESTING=False,
    SECRET_KEY=SECRET_KEY,
    FLOWS_MAIL_BASE_URL=MAIL_BASE_URL,
    **argon2_config(PROFILES[os.environ["BENCH_PROFILE"]]),
)
