"""The capture store and what reads it: redaction, HAR export/import, mock generation."""
