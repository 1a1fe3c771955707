"""The few helpers more than one check module needs: details clipped to a length a table row
can show, exceptions turned into one line (never a traceback), and moments read as UTC so a
naive timestamp from the database compares with the injected clock."""

from __future__ import annotations

from datetime import UTC, datetime

_MAX_DETAIL = 300


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return _clip(text)


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 3] + "..."
