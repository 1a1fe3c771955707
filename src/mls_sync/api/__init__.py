"""The HTTP API (FastAPI): cron route, user sync routes, management routes, health."""

from mls_sync.api.app import create_app

__all__ = ["create_app"]
