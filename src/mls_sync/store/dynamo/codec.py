"""Model instances <-> DynamoDB items (the low-level `{"S": ...}` attribute values).

The columns of the SQLAlchemy models are the item's attributes, so both backends store the same
fields. Datetimes are fixed-width UTC strings (they sort as text, which the index keys rely on);
JSON columns are JSON text, so numbers keep their Python type instead of coming back as
Decimal; None is an absent attribute.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import JSON, Boolean, Float, Integer, inspect

from mls_sync.store.models import Base
from mls_sync.store.types import UTCDateTime

Item = dict[str, dict[str, Any]]
M = TypeVar("M", bound=Base)


def iso(value: datetime) -> str:
    """Fixed width, always with microseconds: text order is time order."""
    if value.tzinfo is None:
        raise ValueError("naive datetimes are not stored; use an aware UTC datetime")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def s(text: str) -> dict[str, str]:
    return {"S": text}


def n(number: int | float) -> dict[str, str]:
    return {"N": repr(number) if isinstance(number, float) else str(number)}


def columns_of(obj: Base) -> Item:
    """The instance's column values as attributes (None left out)."""
    item: Item = {}
    for column in inspect(type(obj)).columns:
        value = getattr(obj, column.key)
        if value is None:
            continue
        item[column.key] = _encode(column.type, value)
    return item


def from_item(model: type[M], item: Item) -> M:
    """A transient instance of `model` with the item's column values."""
    values: dict[str, Any] = {}
    for column in inspect(model).columns:
        raw = item.get(column.key)
        values[column.key] = None if raw is None or "NULL" in raw else _decode(column.type, raw)
    return model(**values)


def _encode(kind: Any, value: Any) -> dict[str, Any]:
    if isinstance(kind, UTCDateTime):
        return s(iso(value))
    if isinstance(kind, JSON):
        return s(json.dumps(value))  # key order kept: the API answers in it
    if isinstance(kind, Boolean):
        return {"BOOL": bool(value)}
    if isinstance(kind, Integer):
        return n(int(value))
    if isinstance(kind, Float):
        return n(float(value))
    return s(str(value))


def _decode(kind: Any, raw: dict[str, Any]) -> Any:
    if isinstance(kind, UTCDateTime):
        return parse_iso(raw["S"])
    if isinstance(kind, JSON):
        return json.loads(raw["S"])
    if isinstance(kind, Boolean):
        return raw["BOOL"]
    if isinstance(kind, Integer):
        return int(raw["N"])
    if isinstance(kind, Float):
        return float(raw["N"])
    return raw["S"]
