"""WSGI entry of the viewer part: `gunicorn ris_app.viewer.wsgi:app`."""

from ris_app.ops.logging_setup import setup_logging
from ris_app.viewer.app import create_viewer_app

setup_logging()
app = create_viewer_app()
