"""WSGI entry point: `gunicorn wsgi:app` serves the config named by BACKWORKS_CONFIG."""
import gc

from backworks import create_app

app = create_app()
# What loading built lives as long as the worker: move it out of the garbage collector's sight, so that
# full collections (every few thousand requests) scan only what requests create.
gc.collect()
gc.freeze()
