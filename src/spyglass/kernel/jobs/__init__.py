"""Periodic work (retention, housekeeping ...) run by one elected leader process."""
