"""WSGI entry for the production server: `gunicorn ris_app.wsgi:app`."""
from . import create_app
from .logging_setup import setup_logging

setup_logging()
app = create_app()
