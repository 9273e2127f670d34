"""Alembic environment: the URL comes from the caller (ris_app.ops.migrate) or the settings."""

from alembic import context

import ris_app.model  # noqa: F401  (the one registry of tables)
from ris_app.config import Config
from ris_app.db import Base, make_engine

config = context.config
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
