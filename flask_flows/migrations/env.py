"""Alembic's environment for flask-flows' tables. Run by :mod:`flask_flows.migrations`
on the connection (and in the transaction) it passes, with a version table of its own."""

from alembic import context

from flask_flows.migrations import VERSION_TABLE
from flask_flows.models import FlowsModel

context.configure(
    connection=context.config.attributes["connection"],
    target_metadata=FlowsModel.metadata,
    version_table=VERSION_TABLE,
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
