"""The database block schema lives apart from the mode: validating it needs no SQLAlchemy, and it is the same."""
from __future__ import annotations

import subprocess
import sys

from backworks.modes import database, database_schema


def test_the_mode_uses_the_light_schema_module():
    assert database.SCHEMA is database_schema.SCHEMA


def test_every_field_type_the_schema_allows_has_a_column_type():
    from backworks.database.records import Field

    for kind in database_schema.FIELD_TYPES:
        assert Field("x", {"type": kind}).type == kind


def test_importing_the_schema_loads_no_sqlalchemy():
    code = "import sys, backworks.modes.database_schema; print('sqlalchemy' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"
