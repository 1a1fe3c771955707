"""A vendor's punishment, recorded: every feed on the punished credential rests until the
vendor's cool-down ends (MLS Grid's suspension, Spark's 1550, a quota spent until its reset),
so no run, cron call, schedule tick or lookup on any worker sends a request before it."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit

from mls_sync.store.interface import Storage
from mls_sync.store.models import MlsFeed
from mls_sync.store.types import utcnow
from mls_sync.sync.clients import ClientFactory


async def suspend_credential(
    db: Storage, clients: ClientFactory, feed: MlsFeed, until: datetime
) -> bool:
    """Rest `feed`'s credential until `until`: the feed and every other feed with the same
    credential (same vendor and host; the identity compares the secret too) are marked, in
    one unit of work. False when the feed was suspended already (a request in flight when
    the first refusal came): the suspension is announced once."""
    credential = clients.credential_id(feed)
    host = urlsplit(feed.base_url).netloc
    now = utcnow()
    newly = True
    async with db.transaction() as session:
        for other in await session.feeds.all():
            same = other.id == feed.id or (
                credential is not None
                and other.provider == feed.provider
                and urlsplit(other.base_url).netloc == host
                and clients.credential_id(other) == credential
            )
            if not same:
                continue
            if other.id == feed.id and other.suspension(now) is not None:
                newly = False
            if other.suspended_until is None or other.suspended_until < until:
                other.suspended_until = until
    return newly
