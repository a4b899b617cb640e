"""Database mode's SQL side: the one SQL engine factory, list queries, record fields."""
