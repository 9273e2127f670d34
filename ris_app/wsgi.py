"""WSGI entry for the production server: `gunicorn ris_app.wsgi:app`."""

from ris_app import create_app
from ris_app.ops.logging_setup import setup_logging

setup_logging()
app = create_app()
