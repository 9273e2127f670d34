"""WSGI entry of the viewer part: `gunicorn ris_app.viewer_wsgi:app`."""
from .logging_setup import setup_logging
from .viewer import create_viewer_app

setup_logging()
app = create_viewer_app()
