"""Small async factories that put the same listing in the sandbox MLS and in our database."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx

from mls_sync.config import Settings
from mls_sync.domain.status import ListingStatus
from mls_sync.observability.alerts import PlatformAlert
from mls_sync.runtime import Runtime
from mls_sync.sandbox.platforms import PlatformSandbox
from mls_sync.sandbox.reso import ResoSandbox
from mls_sync.social.base import Login
from mls_sync.social.registry import build_platform_clients, platform_configs
from mls_sync.store import repositories as repo
from mls_sync.store.models import Listing, PlatformConnection, Post, UnpublishJob
from mls_sync.store.types import utcnow
from mls_sync.sync.unpublish import Unpublisher

RESO_STATUS = {
    ListingStatus.COMING_SOON: "ComingSoon",
    ListingStatus.ACTIVE: "Active",
    ListingStatus.PENDING: "Pending",
    ListingStatus.SOLD: "Closed",
    ListingStatus.OFF_MARKET: "Withdrawn",
}


@dataclass
class Seeded:
    user_id: str
    connection_id: str
    feed_id: str = ""  # the connection's private feed
    listings: dict[str, Listing] = field(default_factory=dict)  # by listing key


async def seed_user(runtime: Runtime, email: str = "agent@example.com") -> str:
    async with runtime.db.transaction() as session:
        return (await repo.create_user(session, email)).id


async def seed_connection(
    runtime: Runtime,
    reso: ResoSandbox,
    reso_url: str,
    statuses: dict[str, ListingStatus],
    *,
    user_id: str | None = None,
    token: str = "mls-token",
    key_field: str | None = "ListingKey",
    in_mls: bool = True,
) -> Seeded:
    """A connection holding one listing per key, each present in the MLS with the same status."""
    user_id = user_id or await seed_user(runtime)
    async with runtime.db.transaction() as session:
        connection = await repo.create_mls_connection(
            session,
            runtime.cipher,
            user_id=user_id,
            base_url=reso_url,
            token=token,
            key_field=key_field,
        )
        seeded = Seeded(user_id=user_id, connection_id=connection.id, feed_id=connection.feed_id)
        for key, status in statuses.items():
            mls_number = f"MLS-{key}"
            if in_mls:
                reso.add_listing(key, mls_number, RESO_STATUS[status])
            seeded.listings[key] = await repo.add_listing(
                session,
                connection=connection,
                listing_key=key,
                mls_number=mls_number,
                status=status,
            )
    return seeded


async def seed_shared_feed(
    runtime: Runtime,
    reso_url: str,
    *,
    token: str = "vendor-token",
    name: str = "Shared MLS",
    provider: str = "generic",
    profile_overrides: dict[str, Any] | None = None,
    key_field: str | None = "ListingKey",
) -> str:
    """An operator's shared feed over the sandbox MLS; returns its id. `key_field` None:
    the vendor profile's (MLS Grid: ListingId)."""
    async with runtime.db.transaction() as session:
        feed = await repo.create_feed(
            session,
            runtime.cipher,
            owner_user_id=None,
            base_url=reso_url,
            secret=token,
            name=name,
            provider=provider,
            profile_overrides=profile_overrides,
            key_field=key_field,
        )
        return feed.id


async def join(
    runtime: Runtime,
    feed_id: str,
    *,
    user_id: str | None = None,
    email: str = "member@example.com",
    agent_mls_id: str | None = None,
    holding: dict[str, ListingStatus] | None = None,
) -> Seeded:
    """A user's membership of a feed, holding these listings (already in the MLS)."""
    user_id = user_id or await seed_user(runtime, email)
    async with runtime.db.transaction() as session:
        feed = await repo.get_feed(session, feed_id)
        assert feed is not None
        connection = await repo.join_feed(
            session, user_id=user_id, feed=feed, agent_mls_id=agent_mls_id
        )
        seeded = Seeded(user_id=user_id, connection_id=connection.id, feed_id=feed.id)
        for key, status in (holding or {}).items():
            seeded.listings[key] = await repo.add_listing(
                session,
                connection=connection,
                listing_key=key,
                mls_number=f"MLS-{key}",
                status=status,
            )
    return seeded


async def seed_posts(
    runtime: Runtime,
    platforms: PlatformSandbox,
    listing: Listing,
    on: tuple[str, ...],
    *,
    connect: bool = True,
    exists_on_platform: bool = True,
) -> list[str]:
    """Published posts of the listing on these platforms (existing on the sandbox), and, with
    `connect`, the user's platform connections; returns the post ids."""
    ids = []
    async with runtime.db.transaction() as session:
        for platform in on:
            token = f"{platform}-token"
            if connect:
                platforms.add_token(platform, token)
                await repo.upsert_platform_connection(
                    session,
                    runtime.cipher,
                    user_id=listing.user_id,
                    platform=platform,
                    access_token=token,
                )
            post_id = f"{platform}-{listing.listing_key}"
            if platform == "linkedin":
                post_id = f"urn:li:share:{abs(hash(listing.listing_key)) % 10**12}"
            if exists_on_platform:
                platforms.add_post(platform, post_id)
            post = await repo.add_post(
                session, listing=listing, platform=platform, platform_post_id=post_id
            )
            ids.append(post.id)
    return ids


# platform posts for the unpublish outbox (no MLS needed)

# A realistic post id per platform, as each API names its posts.
PLATFORM_POST_IDS = {
    "facebook": "104857600_555000111",
    "instagram": "17895695668004550",
    "linkedin": "urn:li:share:7180000000000000001",
    "x": "1850000000000000001",
    "google_business": "accounts/1001/locations/2002/localPosts/3003",
    "pinterest": "987654321012345678",
    "tiktok": "7300000000000000001",
}


async def seed_listing(
    runtime: Runtime,
    *,
    user_id: str | None = None,
    key: str = "K1",
    status: ListingStatus = ListingStatus.SOLD,
) -> Listing:
    """A listing of a fresh MLS connection, for tests that drive the outbox directly."""
    user_id = user_id or await seed_user(runtime, f"agent-{key.lower()}@example.com")
    async with runtime.db.transaction() as session:
        connection = await repo.create_mls_connection(
            session, runtime.cipher, user_id=user_id, base_url="http://mls.invalid", token="t"
        )
        return await repo.add_listing(
            session, connection=connection, listing_key=key, mls_number=f"MLS-{key}", status=status
        )


async def connect_platform(
    runtime: Runtime,
    platforms: PlatformSandbox,
    user_id: str,
    platform: str,
    *,
    refresh: bool = True,
    expires_at: datetime | None = None,
    expired: bool = False,
    dies_on_schedule: bool = False,
    login: Login | None = None,
    token_platform: str | None = None,
) -> tuple[str, str | None]:
    """The user's connection to a platform, known to the sandbox; returns (access, refresh).

    `dies_on_schedule`: the sandbox expires the token at `expires_at` too (by its clock), not
    only our records. `token_platform`: where the sandbox knows the token (Instagram through
    Facebook Login holds a Facebook Page token)."""
    access = f"{platform}-access-{user_id[:6]}"
    refresh_token = f"{platform}-refresh-{user_id[:6]}" if refresh else None
    platforms.add_token(
        token_platform or platform,
        access,
        refresh_token=refresh_token,
        expires_at=expires_at if dies_on_schedule else None,
    )
    if expired:
        platforms.expire_token(platform, access)
    async with runtime.db.transaction() as session:
        await repo.upsert_platform_connection(
            session,
            runtime.cipher,
            user_id=user_id,
            platform=platform,
            access_token=access,
            refresh_token=refresh_token,
            expires_at=expires_at,
            login=login,
        )
    return access, refresh_token


async def publish(
    runtime: Runtime,
    platforms: PlatformSandbox,
    listing: Listing,
    platform: str,
    *,
    post_id: str | None = None,
    on_platform: bool = True,
) -> str:
    """A published post of the listing (existing on the sandbox unless told otherwise)."""
    post_id = post_id or PLATFORM_POST_IDS[platform]
    if on_platform:
        platforms.add_post(platform, post_id)
    async with runtime.db.transaction() as session:
        post = await repo.add_post(
            session, listing=listing, platform=platform, platform_post_id=post_id
        )
        return post.id


async def queue_unpublish(runtime: Runtime, listing_id: str) -> int:
    """The outbox rows a status change to sold writes, without the status change."""
    async with runtime.db.transaction() as session:
        return await session.outbox.enqueue(listing_id)


def with_sandbox_platforms(settings: Settings, platforms_url: str) -> Settings:
    """The settings with every platform (and its OAuth client) pointed at the sandbox."""
    overrides = PlatformSandbox.settings_for(platforms_url)
    return Settings.model_validate({**settings.model_dump(), **overrides})


class Clock:
    """Real time plus an offset the test moves forward ("the next run, later")."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return utcnow() + self.offset

    def advance(self, by: timedelta = timedelta(), /, **delta: float) -> None:
        """`clock.advance(TTL)` or `clock.advance(minutes=5)`."""
        self.offset += by + timedelta(**delta)


class AlertsSpy:
    """Stands in for the monitor: collects the platform alerts the outbox raises."""

    def __init__(self) -> None:
        self.sent: list[PlatformAlert] = []

    async def __call__(self, alert: PlatformAlert) -> None:
        self.sent.append(alert)


def make_unpublisher(
    runtime: Runtime,
    settings: Settings,
    http: httpx.AsyncClient,
    clock: Callable[[], datetime],
    *,
    cap: int = 4,
    alerts: AlertsSpy | None = None,
) -> Unpublisher:
    """The outbox drain on the runtime's database, every platform where `settings` point."""
    clients = build_platform_clients(http, platform_configs(settings))
    unpublisher = Unpublisher(
        runtime.db,
        runtime.cipher,
        clients,
        backoff_seconds=60.0,
        per_platform_concurrency=cap,
        clock=clock,
    )
    if alerts is not None:  # otherwise alerts are logged, as without a monitor
        unpublisher.alerts = alerts
    return unpublisher


# reading back what the outbox did


async def post_of(runtime: Runtime, post_id: str) -> Post:
    async with runtime.db.transaction() as session:
        post = await session.get(Post, post_id)
        assert post is not None
        return post


async def job_of(runtime: Runtime, post_id: str) -> UnpublishJob | None:
    # Through the repository (any storage backend): every job, due or deferred.
    async with runtime.db.transaction() as session:
        jobs = await session.outbox.due(now=utcnow() + timedelta(days=3650))
        return next((job for job, post, _ in jobs if post.id == post_id), None)


async def connection_of(runtime: Runtime, user_id: str, platform: str) -> PlatformConnection:
    async with runtime.db.transaction() as session:
        connection = await session.platforms.get(user_id, platform)
        assert connection is not None
        return connection
