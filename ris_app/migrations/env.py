"""Alembic environment: the URL comes from the caller (ris_app.ops.migrate) or the settings."""

import warnings

from alembic import context
from sqlalchemy.exc import SAWarning

import ris_app.model  # noqa: F401  (the one registry of tables)
from ris_app.config import Config
from ris_app.db import Base, make_engine

config = context.config
# Batch migrations on SQLite reflect the tables they copy and those their foreign keys
# name; SQLAlchemy cannot reflect the expression index on patient's lower(family_name) and
# says so each time. No migration batch-copies patient (the index is never rebuilt from a
# reflection; tests/tracking/test_tracking.py checks it after migrating): the warning is noise.
warnings.filterwarnings(
    "ignore", message="Skipped unsupported reflection of expression-based index", category=SAWarning
)
url = config.attributes.get("url") or Config.from_env(create_secrets=False).database_url

if context.is_offline_mode():
    context.configure(url=url, target_metadata=Base.metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    connection = config.attributes.get("connection")
    if connection is None:
        engine = make_engine(url)
        with engine.connect() as connection:
            context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
    else:
        context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
