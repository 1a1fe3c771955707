"""The tables (DESIGN.md section 4). Secrets live only in `*_encrypted` columns."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from mls_sync.domain.status import ConnectionState, ListingStatus, PostStatus
from mls_sync.store.types import UTCDateTime, new_id, utcnow


class Base(DeclarativeBase):
    type_annotation_map = {  # noqa: RUF012 (SQLAlchemy reads this class attribute)
        datetime: UTCDateTime(),
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


def _id() -> Mapped[str]:
    return mapped_column(String(32), primary_key=True, default=new_id)


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = _id()
    email: Mapped[str] = mapped_column(String(320), unique=True)
    api_key_hash: Mapped[str | None] = mapped_column(String(128), index=True)
    # Signing out of the dashboard ends every sign-in made before this instant.
    web_sessions_ended_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MlsFeed(Base):
    """One MLS as one credential sees it (DESIGN.md section 4): replicated once, whoever
    holds its listings. `owner_user_id` None is the operator's shared feed; a user's id makes
    it that user's private feed (per-agent credentials: Spark, Rapattoni)."""

    __tablename__ = "mls_feeds"

    id: Mapped[str] = _id()
    owner_user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200), default="")
    provider: Mapped[str] = mapped_column(String(50), default="generic")
    base_url: Mapped[str] = mapped_column(String(500))
    auth_kind: Mapped[str] = mapped_column(String(30), default="bearer")
    credentials_encrypted: Mapped[str] = mapped_column(Text)
    # None: the vendor profile's (mls/profiles.py), e.g. MLS Grid's ListingId.
    key_field: Mapped[str | None] = mapped_column(String(50))
    filter_style: Mapped[str | None] = mapped_column(String(10))
    status_overrides: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Vendor profile fields this feed overrides, e.g. MLS Grid's originating_system_name;
    # OAuth client id and secret live in credentials_encrypted.
    profile_overrides: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(20), default=ConnectionState.ACTIVE)
    state_message: Mapped[str | None] = mapped_column(Text)
    cadence_seconds: Mapped[int] = mapped_column(Integer, default=900)
    bookmark_timestamp: Mapped[datetime | None]
    bookmark_keys: Mapped[list[Any]] = mapped_column(default=list)
    # When the replica first held the whole feed (imports wait for it); None while loading.
    loaded_at: Mapped[datetime | None]
    reconciled_at: Mapped[datetime | None]
    # RESO EntityEvent (RCP-027) replication: the last EntityEventSequence applied.
    entity_event_sequence: Mapped[int | None] = mapped_column(BigInteger)
    last_run_at: Mapped[datetime | None]
    # A vendor suspended the feed's credential (over its limits): nothing is sent before.
    suspended_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def suspension(self, now: datetime) -> datetime | None:
        """Until when the vendor's suspension of the credential runs; None once past."""
        until = self.suspended_until
        return until if until is not None and until > now else None


class FeedRecord(Base):
    """The local replica: a Property's key fields as the feed last said them."""

    __tablename__ = "feed_records"
    __table_args__ = (
        Index("ix_feed_records_listing_id", "feed_id", "listing_id"),
        Index("ix_feed_records_agent", "feed_id", "list_agent_mls_id"),
        Index("ix_feed_records_office", "feed_id", "list_office_mls_id"),
    )

    feed_id: Mapped[str] = mapped_column(
        ForeignKey("mls_feeds.id", ondelete="CASCADE"), primary_key=True
    )
    listing_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    listing_id: Mapped[str | None] = mapped_column(String(100))
    standard_status: Mapped[str | None] = mapped_column(String(50))
    mls_status: Mapped[str | None] = mapped_column(String(100))
    modification_timestamp: Mapped[datetime | None]
    list_agent_mls_id: Mapped[str | None] = mapped_column(String(100))
    list_office_mls_id: Mapped[str | None] = mapped_column(String(100))
    gone: Mapped[bool] = mapped_column(Boolean, default=False)
    seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class MlsConnection(Base):
    """A user's membership in a feed: whose listings they hold there, under which name."""

    __tablename__ = "mls_connections"

    id: Mapped[str] = _id()
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    feed_id: Mapped[str] = mapped_column(ForeignKey("mls_feeds.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    agent_mls_id: Mapped[str | None] = mapped_column(String(100))
    office_mls_id: Mapped[str | None] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(20), default=ConnectionState.ACTIVE)
    state_message: Mapped[str | None] = mapped_column(Text)
    # When the member was last synced is when its feed last ran: `MlsFeed.last_run_at`.
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    listings: Mapped[list[Listing]] = relationship(back_populates="connection")


class Listing(Base):
    __tablename__ = "listings"
    __table_args__ = (
        UniqueConstraint("mls_connection_id", "listing_key"),
        Index("ix_listings_feed_key", "feed_id", "listing_key"),
    )

    id: Mapped[str] = _id()
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    mls_connection_id: Mapped[str] = mapped_column(
        ForeignKey("mls_connections.id", ondelete="CASCADE"), index=True
    )
    # The connection's feed, kept here so one query finds every holder of a changed record.
    feed_id: Mapped[str] = mapped_column(String(32))
    mls_number: Mapped[str] = mapped_column(String(100))
    listing_key: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default=ListingStatus.ACTIVE)
    mls_modified_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    connection: Mapped[MlsConnection] = relationship(back_populates="listings")


class ListingStatusHistory(Base):
    __tablename__ = "listing_status_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    listing_id: Mapped[str] = mapped_column(
        ForeignKey("listings.id", ondelete="CASCADE"), index=True
    )
    old_status: Mapped[str] = mapped_column(String(20))
    new_status: Mapped[str] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(String(30), default="mls_sync")
    sync_run_id: Mapped[str | None] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class PlatformConnection(Base):
    __tablename__ = "platform_connections"
    __table_args__ = (UniqueConstraint("user_id", "platform"),)

    id: Mapped[str] = _id()
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    platform: Mapped[str] = mapped_column(String(30))
    access_token_encrypted: Mapped[str] = mapped_column(Text)
    refresh_token_encrypted: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime | None]
    state: Mapped[str] = mapped_column(String(20), default=ConnectionState.ACTIVE)
    state_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Instagram: "facebook" or "instagram" (social.base.Login); None for one-login platforms.
    login: Mapped[str | None] = mapped_column(String(20))
    tokens_checked_at: Mapped[datetime | None]  # last refreshed or verified ahead of need
    expiry_warned_at: Mapped[datetime | None]  # MlsSyncPlatformTokenExpiring sent for expires_at


class Post(Base):
    __tablename__ = "posts"

    id: Mapped[str] = _id()
    listing_id: Mapped[str] = mapped_column(
        ForeignKey("listings.id", ondelete="CASCADE"), index=True
    )
    platform: Mapped[str] = mapped_column(String(30))
    platform_post_id: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(20), default=PostStatus.PUBLISHED)
    unpublished_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class UnpublishJob(Base):
    """The outbox: written with the status change that calls for it, deleted when done."""

    __tablename__ = "unpublish_jobs"
    __table_args__ = (Index("ix_unpublish_jobs_due", "next_attempt_at"),)

    id: Mapped[str] = _id()
    post_id: Mapped[str] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"), unique=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Who holds the claim (a process's lease-holder id) while a drain calls the platform:
    # whoever takes over a dead holder's feed also takes over its claims (sync/engine.py).
    claimed_by: Mapped[str | None] = mapped_column(String(100), index=True)


class SyncRun(Base):
    __tablename__ = "sync_runs"

    id: Mapped[str] = _id()
    trigger: Mapped[str] = mapped_column(String(20))
    scope: Mapped[str] = mapped_column(String(20))
    scope_id: Mapped[str | None] = mapped_column(String(32))
    user_id: Mapped[str | None] = mapped_column(String(32), index=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    finished_at: Mapped[datetime | None]
    success: Mapped[bool | None] = mapped_column(Boolean)
    message: Mapped[str | None] = mapped_column(Text)
    totals: Mapped[dict[str, Any]] = mapped_column(default=dict)
    errors: Mapped[list[Any]] = mapped_column(default=list)
    # queued (deferred to a worker), running, finished
    state: Mapped[str] = mapped_column(String(20), default="running")
    status_changes: Mapped[list[Any]] = mapped_column(default=list)
    # e.g. {"connectionsDone": 3, "connectionsTotal": 10} while a run is under way
    progress: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # A connection's run deferred as part of a user's or everyone's run (worker/): the parent
    # is finished, with the summed totals, when its last child finishes.
    parent_id: Mapped[str | None] = mapped_column(String(32), index=True)
    # A connection's part of a feed's run (scope "feed"): the feed run it was reported from.
    feed_run_id: Mapped[str | None] = mapped_column(String(32), index=True)


class ConnectionLease(Base):
    """Who syncs a connection right now, until when (renewed while working)."""

    __tablename__ = "connection_leases"

    connection_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    holder: Mapped[str] = mapped_column(String(100))
    acquired_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]


class RateBucket(Base):
    """One shared request budget (GCRA): many workers, one limit per MLS credential and window."""

    __tablename__ = "rate_buckets"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    tat: Mapped[float] = mapped_column(Float)
