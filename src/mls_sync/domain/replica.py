"""A feed's replica row as the sync hands it to the store: a Property's key fields."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class ReplicaRow:
    listing_key: str
    listing_id: str | None
    standard_status: str | None
    mls_status: str | None
    modification_timestamp: datetime | None
    list_agent_mls_id: str | None
    list_office_mls_id: str | None
    gone: bool = False
