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
from typing import Protocol, runtime_checkable


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


class Login(StrEnum):
    """Which login a user connected a platform through; it decides the host and the token.

    Instagram has two: Facebook Login (a Facebook Page's token on graph.facebook.com, which can
    delete media) and Instagram Login (an Instagram user token on graph.instagram.com, which
    cannot). Every other platform has one login, stored as None.
    """

    FACEBOOK = "facebook"
    INSTAGRAM = "instagram"


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
    # The user must connect the platform again: a permission lapsed or the session was
    # invalidated (password changed, app removed). A refresh cannot fix it, so none is tried.
    RECONNECT = "reconnect"
    # The platform no longer serves the API version we send: our configuration, not the
    # user's nor the post's. An operator changes a setting; until then jobs wait, uncounted.
    VERSION_RETIRED = "version_retired"


class PlatformError(Exception):
    """A call that did not happen. `str()` is a human-readable message without any secret."""

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        retry_after: float | None = None,
        status_code: int | None = None,
        api_version: str | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.retry_after = retry_after
        self.status_code = status_code
        self.api_version = api_version  # the version a VERSION_RETIRED answer refused

    def __str__(self) -> str:
        return self.message

    def with_version(self, api_version: str) -> PlatformError:
        """The same error, naming the API version the platform refused."""
        self.api_version = api_version
        return self

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


class VersionedClient(Protocol):
    """A platform whose API is versioned by date (LinkedIn, Meta's Graph): the version is a
    setting, and one cheap request tells whether the platform still serves it."""

    platform: Platform
    api_version: str

    async def probe_api_version(self, access_token: str | None = None) -> None:
        """Raise `PlatformError` of kind VERSION_RETIRED when the platform refuses our version;
        return when it answered anything else about the version (a 401 included). Network
        trouble raises TRANSIENT."""
        ...


@runtime_checkable
class VerifiableClient(Protocol):
    """A platform whose tokens neither expire on a date nor refresh (Facebook Page tokens):
    the only way to learn one died is to use it."""

    async def verify_token(self, access_token: str) -> None:
        """One cheap authenticated read; raises `PlatformError` (AUTH, RECONNECT, ...) when
        the token no longer works."""
        ...
