"""The one contract every social platform client honours: delete a post, refresh a token, or
say why not.

The sync engine only ever sees `DeleteOutcome`, `Tokens` and `PlatformError`; what each platform
calls an expired token or a throttle is translated here, in the platform's own module, so the
outbox can decide between retrying, backing off, asking the user to reconnect and giving up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
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


# How people call each platform, for messages a person reads.
LABELS: dict[Platform, str] = {
    Platform.FACEBOOK: "Facebook",
    Platform.INSTAGRAM: "Instagram",
    Platform.LINKEDIN: "LinkedIn",
    Platform.X: "X",
    Platform.GOOGLE_BUSINESS: "Google Business Profile",
    Platform.PINTEREST: "Pinterest",
    Platform.TIKTOK: "TikTok",
}


def label(platform: str) -> str:
    try:
        return LABELS[Platform(platform)]
    except ValueError:
        return platform


class DeleteOutcome(StrEnum):
    DELETED = "deleted"
    # The platform no longer has the post (deleted by hand, or by an earlier attempt whose answer
    # we never saw). For an unpublish job that is success, not an error.
    ALREADY_GONE = "already_gone"


class ErrorKind(StrEnum):
    AUTH = "auth"  # the token is expired, revoked or invalid: refresh it, or the user reconnects
    RATE_LIMITED = "rate_limited"  # retry after `retry_after` seconds (or a backoff when None)
    TRANSIENT = "transient"  # network trouble, 5xx, garbled answers: retry with backoff
    PERMANENT = "permanent"  # retrying the same request will not help (refusals included)


class PlatformError(Exception):
    """A call that did not happen. `str()` is a human-readable message without any secret."""

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


@dataclass(frozen=True, repr=False)
class Tokens:
    """A user's OAuth credentials for one platform connection, in plaintext (memory only).

    `refresh_token` is None for platforms that refresh with the access token itself (Instagram)
    or cannot refresh at all (Facebook Pages). After a refresh it holds the token to store: a
    new one where the platform rotates them, the same one where it does not.
    """

    access_token: str
    refresh_token: str | None = None
    expires_at: datetime | None = None

    def __repr__(self) -> str:  # never print a token, even by accident in a traceback
        refresh = "set" if self.refresh_token else None
        return f"Tokens(expires_at={self.expires_at!r}, refresh_token={refresh!r})"


class PlatformClient(Protocol):
    platform: Platform
    # False for platforms whose public API cannot delete a published post (TikTok): their
    # `delete_post` always refuses, so no token is refreshed just to hear that.
    supports_delete: bool

    async def delete_post(self, platform_post_id: str, access_token: str) -> DeleteOutcome:
        """Delete one post with the user's token; raise `PlatformError` when it did not happen."""
        ...

    async def refresh_token(self, tokens: Tokens) -> Tokens:
        """New credentials from the platform's token endpoint.

        Raises `PlatformError`: AUTH when the platform refuses the grant (the user must
        re-authenticate), RATE_LIMITED or TRANSIENT when asking again later may work.
        """
        ...
