"""Accounts and access: users, organizations, projects, roles, sessions, API tokens, ingest keys."""
