"""Metadata storage: SQLAlchemy models and Alembic migrations (SQLite by default, Postgres)."""
