"""Seeing what the service does: structured logs (`logs`), Prometheus metrics (`metrics`) and
the alert rules evaluated after each run (`alerts`)."""

from mls_sync.observability.logs import configure_logging

__all__ = ["configure_logging"]
