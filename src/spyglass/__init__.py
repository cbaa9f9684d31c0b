"""Spyglass: self-hosted observability in one Python install."""

__version__ = "0.1.0"
