"""The connections a report looks at, and whether each MLS feed answers with its own
credentials. The connections in scope (one user's, or everyone's) and their feeds are read
once, before any HTTP request, so no database connection is held while an MLS answers. MLS
budgets are sacred (MLS Grid suspends tokens that go over): exactly one cheap request per
feed (however many connections share it), drawn from the feed's normal budget, none for a
feed already known to be expired, and MLS hosts are shown without their URL (which could
embed a credential)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from mls_sync.domain.status import ConnectionState
from mls_sync.mls.client import ResoClient
from mls_sync.mls.errors import (
    MLS_CONNECTION_EXPIRED,
    MlsAuthError,
    MlsBudgetExhausted,
    MlsCredentialSuspended,
    MlsRequestError,
    suspended_message,
)
from mls_sync.services.doctor._text import _clip
from mls_sync.services.doctor.checks import AnyDatabase, Check, Status
from mls_sync.store import repositories as repo
from mls_sync.store.crypto import SecretDecryptError
from mls_sync.store.models import MlsFeed, PlatformConnection, User
from mls_sync.store.types import utcnow
from mls_sync.sync.clients import ConnectionConfigError

# The key looked up by the one MLS request: no listing has it, so the answer is an empty page
# (the cheapest answer a RESO server gives), and any OData server filters on `eq`.
PROBE_KEY = "mls-sync-doctor-probe"
# MLS connections asked at once: each has its own credential and budget, so they may overlap,
# but a doctor run should not look like a burst to a shared MLS host.
MLS_CHECK_CONCURRENCY = 8

MlsClientFor = Callable[[MlsFeed], ResoClient]
# Records a vendor's suspension of a feed's credential (SyncEngine.rest_credential).
RestCredential = Callable[[MlsFeed, datetime], Awaitable[None]]


# what the connection checks look at


@dataclass(frozen=True)
class Holdings:
    """The connections in scope (one user's, or everyone's), read in one transaction before
    any HTTP request, so no database connection is held while an MLS answers."""

    emails: dict[str, str]  # user id -> email
    mls: list[FeedInScope]
    platforms: list[PlatformConnection]


@dataclass(frozen=True)
class FeedInScope:
    """A feed the report asks once, and the connections in scope that read it."""

    feed: MlsFeed
    owner: str  # the private feed's owner's email, or "shared"
    connection_ids: tuple[str, ...]


async def load_holdings(db: AnyDatabase, user: str | None) -> Holdings | Check:
    """The connections of `user` (email or id), or of every user; a fail line for an unknown
    user."""
    async with db.transaction() as session:
        if user is not None:
            found = await session.users.find(user)
            if found is None:
                return Check("user", Status.FAIL, f"no user {user!r}")
            users: Sequence[User] = [found]
        else:
            users = await session.users.all()
        emails = {u.id: u.email for u in users}
        feeds: dict[str, MlsFeed] = {}
        members: dict[str, list[str]] = {}
        platforms: list[PlatformConnection] = []
        for each in users:
            for connection in await session.connections.of_user(each.id):
                feed = await repo.feed_of(session, connection)
                feeds.setdefault(feed.id, feed)
                members.setdefault(feed.id, []).append(connection.id)
            platforms.extend(await session.platforms.of_user(each.id))
        if user is None:  # the operator's report: every feed, members or not
            for feed in await session.feeds.all():
                feeds.setdefault(feed.id, feed)
    mls = [
        FeedInScope(
            feed,
            "shared" if feed.owner_user_id is None else emails.get(feed.owner_user_id, ""),
            tuple(members.get(feed.id, ())),
        )
        for feed in feeds.values()
    ]
    return Holdings(emails, mls, platforms)


# 4. MLS connections


async def check_mls_connections(
    holdings: Holdings, mls_client: MlsClientFor, rest: RestCredential | None = None
) -> list[Check]:
    if not holdings.mls:
        return [Check("MLS connections", Status.PASS, "none yet")]
    gate = asyncio.Semaphore(MLS_CHECK_CONCURRENCY)

    async def one(item: FeedInScope) -> Check:
        async with gate:
            return await check_mls_feed(item, mls_client, rest)

    return list(await asyncio.gather(*(one(item) for item in holdings.mls)))


async def check_mls_feed(
    item: FeedInScope, mls_client: MlsClientFor, rest: RestCredential | None = None
) -> Check:
    """One request, through the feed's own client, credentials and budget: a lookup of a
    key no listing has, `$top=1`, selecting the few fields a sync reads. A probe the vendor
    answers with a suspension records it (`rest`: the engine's), as a run would, so no run
    asks during the cool-down."""
    feed, owner = item.feed, item.owner
    host = urlsplit(feed.base_url).hostname or "the MLS"
    name = f"MLS {feed.name or host}" + (f" ({owner})" if owner else "")
    ids = item.connection_ids
    ref = f" [connection {ids[0]}]" if len(ids) == 1 else f" [feed {feed.id}]"

    def line(status: Status, detail: str) -> Check:
        return Check(name, status, _clip(detail) + ("" if status is Status.PASS else ref))

    if feed.state == ConnectionState.EXPIRED:
        # The MLS refused these credentials already; asking again would spend budget on a
        # known answer (and some vendors count refusals against the credential).
        return line(Status.FAIL, f"{MLS_CONNECTION_EXPIRED} (not asked: marked expired)")
    suspended = feed.suspension(utcnow())
    if suspended is not None:
        # The vendor's cool-down: a probe is a request like any other.
        return line(Status.WARN, f"{suspended_message(suspended)} (not asked)")
    try:
        client = mls_client(feed)
    except SecretDecryptError:
        return line(
            Status.FAIL, "its credentials cannot be decrypted with the configured token keys"
        )
    except ConnectionConfigError as exc:
        return line(Status.FAIL, str(exc))
    # With one key, `eq` is what every OData server accepts, so the "in" to "or" fallback
    # (a second request) can never be needed.
    client.filter_style = "or"
    try:
        await client.fetch_by_keys([PROBE_KEY])
    except MlsAuthError:
        return line(Status.FAIL, MLS_CONNECTION_EXPIRED)
    except MlsBudgetExhausted as exc:
        return line(Status.WARN, f"not asked: {exc}")
    except MlsCredentialSuspended as exc:
        if rest is not None:
            await rest(feed, exc.until)
        return line(Status.FAIL, str(exc))
    except MlsRequestError as exc:
        if exc.status == 429:
            return line(Status.WARN, f"{host} answered, but is throttling this credential: {exc}")
        return line(Status.FAIL, f"{host}: {exc}")
    except Exception as exc:  # anything else is a bug or an odd server: say what, not a trace
        return line(Status.FAIL, f"{host}: unexpected {type(exc).__name__}")
    return line(Status.PASS, f"{host} answered with its credentials")
