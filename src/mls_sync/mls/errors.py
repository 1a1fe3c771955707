"""What can go wrong when asking an MLS, in the words a user sees."""

from __future__ import annotations

from datetime import UTC, datetime

MLS_CONNECTION_EXPIRED = "MLS connection expired. Please re-authenticate."
NETWORK_TIMEOUT = "Network error: Request timeout"
EGRESS_REFUSED = "Refused by the egress policy"


class MlsError(Exception):
    """Base class; `str(error)` is the user-facing message and never holds a credential."""


class MlsAuthError(MlsError):
    """The MLS refused our credentials: the whole connection stops and needs re-authentication."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(MLS_CONNECTION_EXPIRED)
        self.detail = detail


class MlsCredentialSuspended(MlsError):
    """The vendor answered that the credential is over its limits and, by its rules, is now
    suspended (MLS Grid's 429) or must rest (Spark's code 1550): nothing may be sent with it
    until `until`. Like MlsAuthError it stops the whole feed, not one request."""

    def __init__(self, until: datetime) -> None:
        super().__init__(suspended_message(until))
        self.until = until


def suspended_message(until: datetime) -> str:
    return (
        f"The MLS suspended this credential for going over its request limits; nothing is "
        f"sent with it until {until.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    )


class MlsRequestError(MlsError):
    """One request failed (network, server, bad answer): an error for the listings it covered."""

    def __init__(self, message: str, *, retryable: bool = True, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status  # the HTTP status, when the MLS answered at all


class MlsFilterRefused(MlsRequestError):
    """A filter on a field the vendor does not let us filter on: not sent at all (the
    vendor would answer 400, and the request would count against the budget)."""

    def __init__(self, vendor: str, field: str, allowed: frozenset[str]) -> None:
        super().__init__(
            f"{vendor} cannot filter on {field} (it filters on {', '.join(sorted(allowed))})",
            retryable=False,
        )
        self.field = field


class MlsPayloadError(MlsRequestError):
    """The MLS answered, but not with a RESO/OData body we can trust."""

    def __init__(self, message: str) -> None:
        super().__init__(f"Malformed MLS response: {message}", retryable=False)


class MlsBudgetExhausted(MlsRequestError):
    """Our own request budget for this credential is spent for longer than a run may wait: the
    request is not sent at all (MLS Grid suspends tokens that go over, so we never try)."""

    def __init__(self, window: str) -> None:
        super().__init__(f"MLS request budget exhausted for this {window}", retryable=True)
