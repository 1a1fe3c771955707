"""RESO EntityEvent records (RCP-027), as the client reads them.

RCP-027 "EntityEvent Resource and Replication Model" (v2.0.2, ratified December 2023,
https://transport.reso.org/proposals/entity-events.html) defines an append-only log served as
an ordinary OData resource, `/EntityEvent`. Each record has three required fields:
`EntityEventSequence` (the positive portion of Int64; immutable and monotonic, a logical
timestamp), `ResourceName` (a string such as "Property", "Member", "Media") and
`ResourceRecordKey` (the string key of the changed record, for Property its ListingKey);
`ResourceRecordUrl` is optional. A consumer asks `$filter=EntityEventSequence gt N`, follows
`@odata.nextLink`, and fetches each changed record from its resource; a record that answers
404 ("No Record Found") is no longer visible to the consumer and is treated as deleted.
Events carry no payload and no event type, so every event means "fetch this record again".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mls_sync.mls.errors import MlsPayloadError

PROPERTY = "Property"


@dataclass(frozen=True)
class EntityEvent:
    sequence: int
    resource_name: str
    record_key: str


@dataclass(frozen=True)
class EventPage:
    """One page of the log: the Property events in it, and the newest sequence it held (of
    any resource), which is where the next read starts once this page is applied."""

    events: list[EntityEvent]
    last_sequence: int | None

    def record_keys(self) -> list[str]:
        """The changed Properties' keys, each once, in log order."""
        return list(dict.fromkeys(e.record_key for e in self.events))


def parse_event(raw: Any) -> EntityEvent:
    if not isinstance(raw, dict):
        raise MlsPayloadError("an EntityEvent is not an object")
    sequence = raw.get("EntityEventSequence")
    name = raw.get("ResourceName")
    key = raw.get("ResourceRecordKey")
    # bool is an int in Python; a JSON true is not a sequence number.
    if not isinstance(sequence, int) or isinstance(sequence, bool) or sequence < 0:
        raise MlsPayloadError("an EntityEvent has no EntityEventSequence")
    if not isinstance(name, str) or not isinstance(key, str) or not key:
        raise MlsPayloadError("an EntityEvent has no ResourceName or ResourceRecordKey")
    return EntityEvent(sequence, name, key)


def event_page(values: list[Any]) -> EventPage:
    events = [parse_event(raw) for raw in values]
    last = max((e.sequence for e in events), default=None)
    return EventPage([e for e in events if e.resource_name == PROPERTY], last)
