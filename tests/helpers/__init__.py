"""Shared test helpers; the modules with fixtures and hooks are pytest plugins named in the root conftest.py."""
