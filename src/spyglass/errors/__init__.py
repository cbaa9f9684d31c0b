"""Error tracking over the Sentry protocol: ingest, grouping, issues, releases, performance."""
