"""The kernel: what every feature shares (storage, ingest, auth, jobs, web shell)."""
