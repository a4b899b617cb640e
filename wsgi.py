"""WSGI entry point: `gunicorn wsgi:app` serves the config named by BACKWORKS_CONFIG."""
from backworks import create_app

app = create_app()
