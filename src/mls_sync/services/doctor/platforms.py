"""The platforms' side: whether each versioned platform still serves the API version we send
(its published sunset date, and its own answer to one cheap probe, with the user's own token
where a user's report has one), and whether any platform token is about to lapse where no
refresh can renew it. A platform that refuses our version or our token cannot take the
deletes a sync sends it, so these warn ahead of the date and fail once it has passed."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import cast

from mls_sync.domain.status import ConnectionState
from mls_sync.services.doctor._text import _clip, _utc
from mls_sync.services.doctor.checks import Check, Status
from mls_sync.services.doctor.mls import Holdings
from mls_sync.social.base import (
    ErrorKind,
    Login,
    Platform,
    PlatformClient,
    PlatformError,
    VersionedClient,
    label,
)
from mls_sync.social.registry import client_for
from mls_sync.social.versions import POLICIES, sunset_of
from mls_sync.store.crypto import SecretDecryptError, TokenCipher
from mls_sync.store.models import PlatformConnection
from mls_sync.sync.token_care import can_refresh

# A version this close to its published sunset warns: time to plan the change and test it.
VERSION_WARN_DAYS = 30


# 5. the platforms' API versions


async def check_api_versions(
    clients: Mapping[str, PlatformClient],
    *,
    today: date,
    tokens: Mapping[Platform, str] | None = None,
) -> list[Check]:
    """Per versioned platform: the published sunset date of the version we send, and the
    platform's own answer to one cheap probe (with the user's token where given)."""
    probes: list[Awaitable[Check]] = []
    for platform in POLICIES:
        client = clients.get(platform)
        if client is None or not hasattr(client, "probe_api_version"):
            continue
        versioned = cast(VersionedClient, client)
        probes.append(check_api_version(versioned, today=today, token=(tokens or {}).get(platform)))
    return list(await asyncio.gather(*probes))


async def check_api_version(
    client: VersionedClient, *, today: date, token: str | None = None
) -> Check:
    platform = client.platform
    who = label(platform)
    version = client.api_version
    setting = POLICIES[platform].setting
    name = f"{who} API version"
    sunset = sunset_of(platform, version)
    days_left = (sunset - today).days if sunset is not None else None
    asked: str | None = None  # why the platform could not be asked, when it could not
    try:
        await client.probe_api_version(token)
    except PlatformError as exc:
        if exc.kind is ErrorKind.VERSION_RETIRED:
            # Not clipped: the setting to change comes last in the platform client's message.
            message = str(exc) if setting in str(exc) else f"{exc}: set {setting}"
            return Check(name, Status.FAIL, message)
        asked = f"{who} could not be asked ({exc})"
    except Exception as exc:  # a client bug must not hide the other lines
        asked = f"{who} could not be asked ({type(exc).__name__})"
    if sunset is not None and days_left is not None and days_left <= 0:
        # Graph may upgrade calls to a retired version silently: the date is the proof.
        return Check(
            name,
            Status.FAIL,
            f"{version} was retired on {sunset}: set {setting} to a supported version and restart",
        )
    if sunset is not None and days_left is not None and days_left <= VERSION_WARN_DAYS:
        detail = (
            f"{version} is retired on {sunset}, in {days_left} day{'s' if days_left != 1 else ''}"
            f": set {setting} to a newer version before then"
        )
        return Check(name, Status.WARN, detail + (f"; {asked}" if asked else ""))
    until = f"served until {sunset}" if sunset is not None else "no published sunset date"
    if asked is not None:
        return Check(name, Status.WARN, _clip(f"{version} ({until}); {asked}"))
    return Check(name, Status.PASS, f"{version} accepted by {who} ({until})")


def user_probe_tokens(holdings: Holdings, cipher: TokenCipher | None) -> dict[Platform, str]:
    """The user's own access token per versioned platform, for probes that then speak for
    their connection. Instagram through Facebook Login holds a Page token for Facebook's host,
    not for graph.instagram.com, so it is not sent there."""
    tokens: dict[Platform, str] = {}
    if cipher is None:
        return tokens
    for connection in holdings.platforms:
        try:
            platform = Platform(connection.platform)
        except ValueError:
            continue
        if platform not in POLICIES or connection.state != ConnectionState.ACTIVE:
            continue
        if platform is Platform.INSTAGRAM and connection.login == Login.FACEBOOK:
            continue
        try:
            tokens[platform] = cipher.decrypt(connection.access_token_encrypted)
        except SecretDecryptError:
            continue  # the stored secrets line says so; the probe goes without a token
    return tokens


# 6. platform tokens that will lapse


def check_platform_tokens(
    holdings: Holdings,
    clients: Mapping[str, PlatformClient],
    *,
    now: datetime,
    warn_days: float,
) -> list[Check]:
    """Connections the token care cannot keep alive: expired ones fail (the user reconnects),
    ones it cannot refresh (its rule, `can_refresh`) that run out within `warn_days` warn with
    the date."""
    now = _utc(now)
    horizon = now + timedelta(days=warn_days)
    checks: list[Check] = []
    for connection in sorted(holdings.platforms, key=_by_expiry):
        who = label(connection.platform)
        name = f"{who} token ({holdings.emails.get(connection.user_id, connection.user_id)})"
        expires = _utc(connection.expires_at) if connection.expires_at is not None else None
        if connection.state == ConnectionState.EXPIRED:
            reason = f" ({connection.state_message})" if connection.state_message else ""
            checks.append(Check(name, Status.FAIL, _clip(f"expired{reason}: reconnect {who}")))
            continue
        client = client_for(clients, connection.platform, connection.login)
        renewable = can_refresh(client, has_refresh_token=bool(connection.refresh_token_encrypted))
        if connection.state != ConnectionState.ACTIVE or renewable:
            continue  # the token care renews it; other states are reported where they arise
        if expires is None or expires >= horizon:
            continue
        when = expires.isoformat(timespec="minutes")
        if expires <= now:
            checks.append(Check(name, Status.FAIL, f"expired on {when}: reconnect {who}"))
            continue
        days = (expires - now).total_seconds() / 86400
        checks.append(
            Check(
                name,
                Status.WARN,
                f"expires on {when} (in {days:.1f} days) and cannot be refreshed: "
                f"reconnect {who} before then",
            )
        )
    if not checks:
        count = len(holdings.platforms)
        detail = (
            f"{count} connection{'s' if count != 1 else ''}, none expired or expiring within "
            f"{warn_days:g} days without a way to refresh it"
            if count
            else "none yet"
        )
        checks.append(Check("platform tokens", Status.PASS, detail))
    return checks


def _by_expiry(connection: PlatformConnection) -> tuple[datetime, str]:
    far = datetime.max.replace(tzinfo=UTC)
    return (_utc(connection.expires_at) if connection.expires_at else far, connection.platform)
