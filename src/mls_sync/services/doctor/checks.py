"""What every doctor check returns: a `Check` (a name, a `Status` of pass, warn or fail, and a
short detail a person can act on), and the `AnyDatabase` the checks read from (SQL or
DynamoDB). They live apart from the checks so that every submodule can import them without
importing the others, and the package re-exports them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mls_sync.store.interface import Storage

AnyDatabase = Storage


class Status(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str

    def to_wire(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status.value, "detail": self.detail}
