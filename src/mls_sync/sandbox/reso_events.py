"""The sandbox MLS's RESO EntityEvent log (RCP-027) and single-entity key lookups.

Every change to a sandbox listing appends `{EntityEventSequence, ResourceName: "Property",
ResourceRecordKey}` with a sequence one higher than the last (RCP-027: positive, immutable,
monotonic). `ResoSandbox(entity_events=True)` serves the log at `/EntityEvent` with `$filter`,
`$orderby`, `$top`/`$skip` and `@odata.nextLink`; without it, `/EntityEvent` is a 404, like a
server that does not offer the resource. `/Property('KEY')` answers the single entity, or 404
with an OData error body when the MLS no longer has it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mls_sync.sandbox.odata import FieldType

EVENT_FIELDS: dict[str, FieldType] = {
    "EntityEventSequence": FieldType.NUMBER,
    "ResourceName": FieldType.STRING,
    "ResourceRecordKey": FieldType.STRING,
}
EVENT_ORDER: list[tuple[str, bool]] = [("EntityEventSequence", False)]


@dataclass
class EventLog:
    """Append-only; the owner (ResoSandbox) serialises access with its lock."""

    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def last_sequence(self) -> int:
        return self.events[-1]["EntityEventSequence"] if self.events else 0

    def append(self, record_key: str, resource_name: str = "Property") -> int:
        sequence = self.last_sequence + 1
        self.events.append(
            {
                "EntityEventSequence": sequence,
                "ResourceName": resource_name,
                "ResourceRecordKey": record_key,
            }
        )
        return sequence

    def snapshot(self) -> list[dict[str, Any]]:
        return [dict(event) for event in self.events]


def parse_key_segment(segment: str) -> str | None:
    """`'K''1'` -> `K'1`: an OData string key literal, or None when it is not one."""
    if len(segment) < 2 or segment[0] != "'" or segment[-1] != "'":
        return None
    inner = segment[1:-1]
    if "'" in inner.replace("''", ""):
        return None  # a lone quote: not a valid literal
    return inner.replace("''", "'")


__all__ = ["EVENT_FIELDS", "EVENT_ORDER", "EventLog", "parse_key_segment"]
