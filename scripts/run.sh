#!/usr/bin/env bash
# Install Backworks into .venv and serve the example config with gunicorn on http://127.0.0.1:8000.
set -eu
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e .
export BACKWORKS_CONFIG="${BACKWORKS_CONFIG:-config/backworks.yaml}"
exec .venv/bin/gunicorn --bind "${BIND:-127.0.0.1:8000}" wsgi:app
