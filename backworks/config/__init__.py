"""Configuration: the typed model, loading and validation, the schema with help per field, problems, the reference."""
