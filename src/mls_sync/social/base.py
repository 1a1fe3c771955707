"""The one contract every social platform client honours: delete a post, or say why not.

The sync engine only ever sees `DeleteOutcome` and `PlatformError`; what each platform calls an
expired token or a throttle is translated here, in the platform's own module, so the outbox can
decide between retrying, backing off, asking the user to reconnect and giving up.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol


class Platform(StrEnum):
    FACEBOOK = "facebook"
    INSTAGRAM = "instagram"
    LINKEDIN = "linkedin"
    X = "x"
    GOOGLE_BUSINESS = "google_business"
    PINTEREST = "pinterest"
    TIKTOK = "tiktok"


class DeleteOutcome(StrEnum):
    DELETED = "deleted"
    # The platform no longer has the post (deleted by hand, or by an earlier attempt whose answer
    # we never saw). For an unpublish job that is success, not an error.
    ALREADY_GONE = "already_gone"


class ErrorKind(StrEnum):
    AUTH = "auth"  # the token is expired, revoked or invalid: the user must reconnect
    RATE_LIMITED = "rate_limited"  # retry after `retry_after` seconds (or a backoff when None)
    TRANSIENT = "transient"  # network trouble, 5xx, garbled answers: retry with backoff
    PERMANENT = "permanent"  # retrying the same request will not help


class PlatformError(Exception):
    """A delete that did not happen. `str()` is a human-readable message without the token."""

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        retry_after: float | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.retry_after = retry_after
        self.status_code = status_code

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return (
            f"PlatformError(kind={self.kind.value!r}, message={self.message!r}, "
            f"retry_after={self.retry_after!r}, status_code={self.status_code!r})"
        )


class PlatformClient(Protocol):
    platform: Platform

    async def delete_post(self, platform_post_id: str, access_token: str) -> DeleteOutcome:
        """Delete one post with the user's token; raise `PlatformError` when it did not happen."""
        ...
