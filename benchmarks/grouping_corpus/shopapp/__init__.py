"""A small fake shop whose crash sites the grouping benchmark captures with the real sentry-sdk."""
