"""What routes depend on, as annotated aliases: the runtime, a unit of work, the caller.

`SessionDep` is one transaction per request, committed when the route returns and rolled back
when it raises. The caller is looked up in a short transaction of its own, so that sync routes
(which run for minutes and open their own transactions) never hold a database connection
just for having been authenticated.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from mls_sync.config import Settings
from mls_sync.domain.errors import NotFound
from mls_sync.executors import SyncExecutor
from mls_sync.runtime import Runtime
from mls_sync.services import connections, listings, users
from mls_sync.services.records import Listing, MlsConnection, UnitOfWork, User

_api_key = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="A user's API key (`mls-sync users add EMAIL` prints it once).",
)
_cron_secret = HTTPBearer(
    auto_error=False, scheme_name="CronSecret", description="The CRON_SECRET setting."
)
_BEARER = {"WWW-Authenticate": "Bearer"}
# Our ids are uuid4 hex. Anything else cannot exist, and is answered 404 without a query
# (which also keeps bytes PostgreSQL refuses, such as NUL, away from the database).
_ID = re.compile(r"[0-9a-f]{32}")


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime | None = getattr(request.app.state, "runtime", None)
    if runtime is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "The service is starting")
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_executor(runtime: RuntimeDep) -> SyncExecutor:
    """Who runs the syncs a route asks for: here and now, or a worker (MLS_SYNC_EXECUTOR)."""
    return runtime.executor


ExecutorDep = Annotated[SyncExecutor, Depends(get_executor)]


async def get_session(runtime: RuntimeDep) -> AsyncIterator[UnitOfWork]:
    async with runtime.db.transaction() as session:
        yield session


SessionDep = Annotated[UnitOfWork, Depends(get_session)]


async def current_user(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_api_key)],
) -> User:
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "Missing API key: send Authorization: Bearer <key>",
            headers=_BEARER,
        )
    async with runtime.db.transaction() as session:
        user = await users.authenticate(session, credentials.credentials)
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Invalid API key", headers=_BEARER)
    return user


CurrentUser = Annotated[User, Depends(current_user)]


async def require_cron_secret(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_cron_secret)],
) -> None:
    """Closed unless CRON_SECRET is set; compared in constant time."""
    settings: Settings = request.app.state.settings
    secret = settings.cron_secret
    expected = secret.get_secret_value() if secret is not None else ""
    if not expected:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "The cron endpoint is disabled: set CRON_SECRET to enable it",
        )
    given = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "Missing or wrong cron secret", headers=_BEARER
        )


CronAuthorized = Depends(require_cron_secret)


def looks_like_id(value: str) -> bool:
    return _ID.fullmatch(value) is not None


async def owned_connection(
    connection_id: str, user: CurrentUser, session: SessionDep
) -> MlsConnection:
    """The caller's MLS connection; another user's answers exactly like a missing one."""
    if not looks_like_id(connection_id):
        raise NotFound(connections.CONNECTION_NOT_FOUND)
    return await connections.get_connection(session, connection_id, user_id=user.id)


async def owned_listing(listing_id: str, user: CurrentUser, session: SessionDep) -> Listing:
    if not looks_like_id(listing_id):
        raise NotFound(listings.LISTING_NOT_FOUND)
    return await listings.get_listing(session, listing_id, user_id=user.id)


OwnedConnection = Annotated[MlsConnection, Depends(owned_connection)]
OwnedListing = Annotated[Listing, Depends(owned_listing)]
