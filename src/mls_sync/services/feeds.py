"""MLS feeds: one MLS as one credential sees it, replicated once for every member.

Shared feeds are the operator's (MLS Grid, Bridge and Trestle license their data to the
technology vendor, one credential per MLS): `mls-sync feeds ...` and `/api/admin/feeds`.
A user's connection with credentials of its own (per-agent logins: Spark, Rapattoni) is a
private feed of that user, made through services/connections.py with the same rules.
Credentials are encrypted on the way in and never read back out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mls_sync.domain.errors import FEED_NOT_FOUND, Conflict, InvalidInput, NotFound
from mls_sync.domain.reso import StatusMapper
from mls_sync.egress import EgressPolicy, EgressRefused
from mls_sync.mls.auth import encode_credentials
from mls_sync.mls.errors import EGRESS_REFUSED
from mls_sync.mls.logins import new_login_id
from mls_sync.mls.overrides import OverrideError, check_against, checked_overrides
from mls_sync.mls.profiles import (
    AUTH_KINDS,
    LOOKUP_KEY_FIELDS,
    PROFILES,
    ProfileError,
    VendorProfile,
    resolve_profile,
)
from mls_sync.services.records import MlsFeed, UnitOfWork
from mls_sync.store import repositories as repo
from mls_sync.store.crypto import TokenCipher
from mls_sync.store.types import utcnow
from mls_sync.sync.engine import SyncEngine
from mls_sync.sync.guard import SyncInProgressError, hold

KEY_FIELDS = LOOKUP_KEY_FIELDS  # what a feed's keyField may be

PROVIDERS: tuple[str, ...] = tuple(PROFILES)
FILTER_STYLES = ("in", "or")
# A feed's cadence: a minute at the fastest (1,440 requests a day when idle, under 4% of MLS
# Grid's 40,000), a day at the slowest.
CADENCE_SECONDS = (60, 86_400)
DEFAULT_CADENCE_SECONDS = 900


@dataclass(frozen=True)
class MlsCredentials:
    """What the MLS gave: a bearer token; an OAuth2 client (client credentials); a signed-in
    user's refresh token (`oauth2_refresh`); or a member's login (`oauth2_password`: the
    member's MLS id and password). Logins that renew keep their tokens in the same encrypted
    blob (mls/logins.py)."""

    auth_kind: str = "bearer"
    token: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    token_url: str | None = None
    scope: str | None = None
    refresh_token: str | None = None
    username: str | None = None
    password: str | None = None

    def secret(self) -> str:
        """The plaintext stored encrypted: the bare token, or a JSON object for OAuth2."""
        if self.auth_kind == "bearer":
            if not self.token:
                raise InvalidInput("token", "a bearer connection needs its token")
            return self.token
        if self.auth_kind not in AUTH_KINDS:
            raise InvalidInput("authKind", f"one of {', '.join(AUTH_KINDS)}")
        if not self.client_id:
            raise InvalidInput("clientId", f"an {self.auth_kind} connection needs clientId")
        blob: dict[str, Any] = {"client_id": self.client_id}
        if self.client_secret:
            blob["client_secret"] = self.client_secret
        if self.scope:
            blob["scope"] = self.scope
        if self.auth_kind == "oauth2":
            if not self.client_secret:
                raise InvalidInput("clientSecret", "an oauth2 connection needs clientSecret")
            return encode_credentials(blob)
        blob["login_id"] = new_login_id()  # a new sign-in: a new login
        if self.auth_kind == "oauth2_refresh":
            if not self.refresh_token:
                raise InvalidInput("refreshToken", "an oauth2_refresh connection needs one")
            blob["refresh_token"] = self.refresh_token
        else:
            if not self.username:
                raise InvalidInput("username", "the member's MLS id is needed to sign in")
            if not self.password:
                raise InvalidInput("password", "the member's password is needed to sign in")
            blob["username"], blob["password"] = self.username, self.password
        return encode_credentials(blob)


@dataclass(frozen=True)
class FeedSettings:
    """How to reach and read one MLS. None leaves a field to the vendor profile."""

    base_url: str
    credentials: MlsCredentials
    name: str = ""
    provider: str = "generic"
    key_field: str | None = None
    filter_style: str | None = None
    profile_overrides: Mapping[str, Any] | None = None
    status_overrides: Mapping[str, str] | None = None
    cadence_seconds: int = DEFAULT_CADENCE_SECONDS


@dataclass(frozen=True)
class FeedView:
    """A feed as the operator sees it (never its credentials)."""

    id: str
    name: str
    shared: bool
    owner_user_id: str | None
    provider: str
    base_url: str
    auth_kind: str
    key_field: str
    filter_style: str
    state: str
    state_message: str | None
    cadence_seconds: int
    loaded_at: datetime | None
    reconciled_at: datetime | None
    bookmark_timestamp: datetime | None
    last_run_at: datetime | None
    suspended_until: datetime | None  # the vendor's cool-down, while it runs
    created_at: datetime
    members: int
    records: int


def suspension_of(feed: MlsFeed) -> datetime | None:
    """Until when the vendor has suspended the feed's credential; None once that is past."""
    return feed.suspension(utcnow())


def effective_profile(feed: MlsFeed) -> VendorProfile | None:
    try:
        return resolve_profile(
            feed.provider, {**feed.profile_overrides, "auth_kind": feed.auth_kind}
        )
    except (ValueError, TypeError):
        return None


def key_field_of(feed: MlsFeed) -> str:
    profile = effective_profile(feed)
    return feed.key_field or (profile.key_field if profile else "ListingKey")


def filter_style_of(feed: MlsFeed) -> str:
    profile = effective_profile(feed)
    return feed.filter_style or (profile.filter_style if profile else "in")


async def view(uow: UnitOfWork, feed: MlsFeed) -> FeedView:
    return FeedView(
        id=feed.id,
        name=feed.name,
        shared=feed.owner_user_id is None,
        owner_user_id=feed.owner_user_id,
        provider=feed.provider,
        base_url=feed.base_url,
        auth_kind=feed.auth_kind,
        key_field=key_field_of(feed),
        filter_style=filter_style_of(feed),
        state=feed.state,
        state_message=feed.state_message,
        cadence_seconds=feed.cadence_seconds,
        loaded_at=feed.loaded_at,
        reconciled_at=feed.reconciled_at,
        bookmark_timestamp=feed.bookmark_timestamp,
        last_run_at=feed.last_run_at,
        suspended_until=suspension_of(feed),
        created_at=feed.created_at,
        members=len(await uow.connections.of_feed(feed.id)),
        records=await uow.replica.count(feed.id),
    )


async def list_feeds(uow: UnitOfWork) -> Sequence[FeedView]:
    """Every feed, shared and private, oldest first (the operator's view)."""
    return [await view(uow, feed) for feed in await uow.feeds.all()]


async def get_feed(uow: UnitOfWork, feed_id: str) -> MlsFeed:
    found = await repo.get_feed(uow, feed_id)
    if found is None:
        raise NotFound(FEED_NOT_FOUND)
    return found


async def get_shared_feed(uow: UnitOfWork, feed_id: str) -> MlsFeed:
    """A shared feed by id, for a user joining it; a private feed answers like a missing
    one (nobody joins another user's credential)."""
    found = await repo.get_feed(uow, feed_id)
    if found is None or found.owner_user_id is not None:
        raise NotFound(FEED_NOT_FOUND)
    return found


async def add_feed(
    uow: UnitOfWork,
    cipher: TokenCipher,
    settings: FeedSettings,
    *,
    owner_user_id: str | None,
    egress: EgressPolicy | None = None,
) -> MlsFeed:
    """A shared feed (`owner_user_id` None) or a user's private one. `egress`: the policy
    its URLs must pass (the edges pass the runtime's; every request checks it again)."""
    secret = settings.credentials.secret()
    overrides = profile_overrides(
        settings.provider,
        settings.credentials,
        settings.profile_overrides,
        operator=owner_user_id is None,
    )
    await check_egress(egress, settings.base_url, "baseUrl")
    await check_egress(egress, overrides.get("token_url"), "tokenUrl")
    return await repo.create_feed(
        uow,
        cipher,
        owner_user_id=owner_user_id,
        base_url=check_url(settings.base_url, "baseUrl"),
        secret=secret,
        name=settings.name,
        provider=settings.provider,
        auth_kind=settings.credentials.auth_kind,
        key_field=_one_of(settings.key_field, KEY_FIELDS, "keyField"),
        filter_style=_one_of(settings.filter_style, FILTER_STYLES, "filterStyle"),
        profile_overrides=overrides,
        status_overrides=status_overrides(settings.status_overrides),
        cadence_seconds=check_cadence(settings.cadence_seconds),
    )


async def update_feed(
    uow: UnitOfWork,
    cipher: TokenCipher,
    feed: MlsFeed,
    *,
    name: str | None = None,
    base_url: str | None = None,
    credentials: MlsCredentials | None = None,
    status_overrides_given: Mapping[str, str] | None = None,
    cadence_seconds: int | None = None,
    egress: EgressPolicy | None = None,
) -> MlsFeed:
    """Rename, move, re-authenticate (an expired feed and its members become active again),
    change the status mapping or the cadence. `egress`: as for `add_feed`."""
    if name is not None:
        feed.name = name
    if base_url is not None:
        await check_egress(egress, base_url, "baseUrl")
        feed.base_url = check_url(base_url, "baseUrl").rstrip("/")
    if credentials is not None:
        try:
            secret = credentials.secret()
            overrides = profile_overrides(
                feed.provider,
                credentials,
                feed.profile_overrides,
                operator=feed.owner_user_id is None,
            )
        except InvalidInput as exc:
            raise exc.nested_in("credentials") from None
        await check_egress(egress, overrides.get("token_url"), "tokenUrl")
        await repo.replace_mls_credentials(
            uow, feed, cipher, secret, auth_kind=credentials.auth_kind
        )
        feed.profile_overrides = overrides
    if status_overrides_given is not None:
        feed.status_overrides = status_overrides(status_overrides_given)
    if cadence_seconds is not None:
        feed.cadence_seconds = check_cadence(cadence_seconds)
    await uow.flush()
    return feed


async def remove_feed(engine: SyncEngine, feed_id: str, *, force: bool = False) -> None:
    """Delete a feed with its replica; a feed with member connections only with `force`
    (which deletes them, with their listings, history and posts). Never while it runs."""
    async with engine.db.transaction() as uow:
        await get_feed(uow, feed_id)
        members = len(await uow.connections.of_feed(feed_id))
    if members and not force:
        raise Conflict(
            f"The feed has {members} connections; remove them first (or force the removal)"
        )
    async with hold(engine.guard, feed_id) as held:
        if not held:
            raise SyncInProgressError()
        async with engine.db.transaction() as uow:
            await uow.feeds.delete(feed_id)


async def check_egress(egress: EgressPolicy | None, url: str | None, field: str) -> None:
    """A URL the service will connect to on the caller's behalf: refused (422, nothing saved)
    when the egress policy would refuse its requests."""
    if egress is None or url is None:
        return
    try:
        await egress.check_url(url)
    except EgressRefused as exc:
        raise InvalidInput(field, f"{EGRESS_REFUSED}: {exc}") from None


def check_url(url: str, field: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise InvalidInput(field, "must be an http:// or https:// URL")
    return url


def check_cadence(seconds: int) -> int:
    low, high = CADENCE_SECONDS
    if not low <= seconds <= high:
        raise InvalidInput("cadenceSeconds", f"between {low} and {high} seconds")
    return seconds


def _one_of(value: str | None, allowed: tuple[str, ...], field: str) -> str | None:
    if value is not None and value not in allowed:
        raise InvalidInput(field, f"one of {', '.join(allowed)}")
    return value


def profile_overrides(
    provider: str,
    credentials: MlsCredentials,
    given: Mapping[str, Any] | None,
    *,
    operator: bool,
) -> dict[str, Any]:
    """The profile fields a feed overrides, checked for who sets them (mls/overrides.py: a
    private feed's owner describes its MLS; rates and budgets are the operator's)."""
    if provider not in PROFILES:
        raise InvalidInput("provider", f"unknown MLS provider; one of {', '.join(PROFILES)}")
    try:
        overrides = checked_overrides(given, operator=operator)
    except OverrideError as exc:
        raise InvalidInput(exc.field, exc.message, within=("profileOverrides",)) from None
    if credentials.token_url:
        overrides["token_url"] = credentials.token_url
    try:
        check_against(resolve_profile(provider, {**overrides, "auth_kind": credentials.auth_kind}))
    except OverrideError as exc:
        raise InvalidInput(exc.field, exc.message, within=("profileOverrides",)) from None
    except ProfileError as exc:
        field = "tokenUrl" if exc.setting == "token_url" else "profileOverrides"
        raise InvalidInput(field, str(exc)) from None
    except (ValueError, TypeError) as exc:
        raise InvalidInput("profileOverrides", str(exc)) from None
    return overrides


def status_overrides(given: Mapping[str, str] | None) -> dict[str, str]:
    try:
        StatusMapper(given or None)
    except ValueError as exc:
        raise InvalidInput("statusOverrides", str(exc)) from None
    return dict(given or {})
