"""The database mode's block schema, apart from the mode so that configs without database endpoints validate
(and the reference is written) without importing SQLAlchemy."""
from __future__ import annotations

from backworks.config.fields import field, listof, named, section

SUMMARY = "A REST resource over a SQL table: filters, sort, pagination, validation, no SQL written."
OPERATIONS = ["list", "get", "create", "update", "patch", "delete"]
FIELD_TYPES = ["string", "text", "integer", "number", "boolean", "datetime", "date", "json"]
IDENT = r"^[A-Za-z_][A-Za-z0-9_]*$"

FIELD = section("One column: its type and the checks every write must pass.", {
    "type": field("string", "Column type.", allowed=FIELD_TYPES, required=True),
    "required": field("boolean", "Writes must give a non-null value.", default=False),
    "unique": field("boolean", "No two rows may share a value (409 otherwise).", default=False),
    "default": {"meta": {"help": "Value used when a create leaves the field out ('now' for datetime/date "
                                 "fields: the current UTC time)."}, "nullable": True},
    "max_length": field("integer", "Most characters (string and text fields).", min=1),
    "min": field(["integer", "float"], "Smallest value (integer and number fields)."),
    "max": field(["integer", "float"], "Largest value (integer and number fields)."),
    "allowed": listof("The only values accepted.", {"nullable": False}, minlength=1),
})

SCHEMA = {
    "table": field("string", "SQL table name.", required=True, regex=IDENT),
    "fields": named("Columns by name (the id column is added unless declared).", FIELD, required=True,
                    minlength=1, keysrules={"type": "string", "regex": IDENT}),
    "id_field": field("string", "Primary key column: an auto-increment integer unless declared in fields.",
                      default="id", regex=IDENT),
    "create_table": field("boolean", "Create the table at startup when it does not exist.", default=True),
    "operations": listof("Operations offered: list and create on the path, the others on path/{id}.",
                         {"type": "string", "allowed": OPERATIONS}, default=list(OPERATIONS), minlength=1),
    "max_limit": field("integer", "Hard maximum rows per page; larger limits are lowered to it.", min=1,
                       default=100),
    "default_limit": field("integer", "Rows per page when the client asks for none.", min=1, default=20),
}
