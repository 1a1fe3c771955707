"""What a caller can be told went wrong, as types: every layer raises these (or a subclass
that says more), and each edge maps the type, never the text, to its answer: an HTTP status
(api/errors.py), an exit status (cli/support.py), `{success: false, message}` (actions.py).

`message` is written for the caller: it never holds a credential and may be shown as it is.
"""

from __future__ import annotations


class ServiceError(Exception):
    """Base class: a request the service cannot carry out, and why, in the caller's words."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(ServiceError):
    """No such thing, or not the caller's: both answer alike, so ids cannot be probed."""


class Conflict(ServiceError):
    """The request clashes with the current state: a sync is running, the thing exists."""


class InvalidInput(ServiceError):
    """Well-formed but wrong. `field` is its camelCase name on the wire; `within` the names
    of the objects it sits in (`("credentials",)` for a connection's new credentials)."""

    def __init__(self, field: str, message: str, *, within: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.field = field
        self.within = within

    def nested_in(self, *outer: str) -> InvalidInput:
        return InvalidInput(self.field, self.message, within=(*outer, *self.within))


class NeedsReauth(ServiceError):
    """A credential was refused for good: only the user can mend it (new credentials)."""


class Unavailable(ServiceError):
    """Something the request needs cannot be reached now (the MLS, the database); a retry
    later may succeed."""


class Unsupported(ServiceError):
    """This deployment does not offer the feature (the dashboard on DynamoDB, say)."""


# What a missing (or another user's: they look alike) record answers, in every layer.
CONNECTION_NOT_FOUND = "MLS connection not found"
LISTING_NOT_FOUND = "Listing not found"
FEED_NOT_FOUND = "MLS feed not found"
USER_NOT_FOUND = "User not found"


def internal_error(failure: BaseException | str) -> str:
    """What a user sees for our own bug: its type only (the text of an exception may hold
    anything, a credential included; the log has the traceback)."""
    kind = failure if isinstance(failure, str) else type(failure).__name__
    return f"Internal error: {kind}"
