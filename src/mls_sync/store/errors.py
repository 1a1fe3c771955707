"""The storage's own errors, as the services' typed errors (a leaf: both backends raise them)."""

from __future__ import annotations

from mls_sync.domain.errors import Unavailable, Unsupported


class TablesMissingError(Unavailable):
    """The DynamoDB tables are not there: `mls-sync db upgrade` creates them."""


class SqlOnlyError(Unsupported):
    """A feature that needs SQL (SQLite or PostgreSQL) was asked for on DynamoDB."""

    def __init__(self, feature: str) -> None:
        super().__init__(
            f"{feature} needs DATABASE_URL on SQLite or PostgreSQL; "
            "it is not available with the DynamoDB backend"
        )
