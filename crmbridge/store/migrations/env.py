"""Alembic environment for crmbridge's store; run through ``crmbridge db upgrade``."""

from __future__ import annotations

from alembic import context

from crmbridge.store.migrate import include_object
from crmbridge.store.tables import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `crmbridge db upgrade` (crmbridge.store.migrate)")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    include_object=include_object,
)
with context.begin_transaction():
    context.run_migrations()
