"""What routes depend on, as annotated aliases: the runtime, a unit of work, the caller.

`SessionDep` is one transaction per request, committed when the route returns and rolled back
when it raises. The caller is looked up in a short transaction of its own, so that sync routes
(which run for minutes and open their own transactions) never hold a database connection
just for having been authenticated.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from mls_sync.api.auth_throttle import check_not_throttled, count_refusal
from mls_sync.config import Settings
from mls_sync.domain.errors import CONNECTION_NOT_FOUND, LISTING_NOT_FOUND, NotFound
from mls_sync.executors import SyncExecutor
from mls_sync.runtime import Runtime
from mls_sync.services import connections, listings, users
from mls_sync.services.connections import ConnectionView
from mls_sync.services.records import Listing, UnitOfWork, User

_api_key = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="A user's API key (`mls-sync users add EMAIL` prints it once).",
)
_cron_secret = HTTPBearer(
    auto_error=False, scheme_name="CronSecret", description="The CRON_SECRET setting."
)
_admin_key = HTTPBearer(
    auto_error=False, scheme_name="AdminKey", description="The MLS_SYNC_ADMIN_API_KEY setting."
)
_metrics_token = HTTPBearer(
    auto_error=False,
    scheme_name="MetricsToken",
    description="The MLS_SYNC_METRICS_TOKEN setting, when set.",
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
    request: Request,
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_api_key)],
) -> User:
    check_not_throttled(request)
    if credentials is None:
        count_refusal(request)
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "Missing API key: send Authorization: Bearer <key>",
            headers=_BEARER,
        )
    async with runtime.db.transaction() as session:
        user = await users.authenticate(session, credentials.credentials)
    if user is None:
        count_refusal(request)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Invalid API key", headers=_BEARER)
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def secret_guard(
    scheme: HTTPBearer,
    secret_of: Callable[[Settings], SecretStr | None],
    *,
    disabled: str | None,
    refused: str,
) -> Callable[..., Awaitable[None]]:
    """A dependency that lets a request through with the setting's bearer secret, compared in
    constant time, and counts every refusal against the caller's address. An unset secret
    closes the route (503) when `disabled` says why, and opens it when `disabled` is None."""

    # `Depends` as a default, not in `Annotated`: FastAPI resolves string annotations in the
    # module's globals, where this function's `scheme` is not.
    async def require(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(scheme),
    ) -> None:
        secret = secret_of(request.app.state.settings)
        expected = secret.get_secret_value() if secret is not None else ""
        if not expected:
            if disabled is None:
                return
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, disabled)
        check_not_throttled(request)
        given = credentials.credentials if credentials is not None else ""
        if not hmac.compare_digest(given.encode(), expected.encode()):
            count_refusal(request)
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, refused, headers=_BEARER)

    return require


CronAuthorized = Depends(
    secret_guard(
        _cron_secret,
        lambda settings: settings.cron_secret,
        disabled="The cron endpoint is disabled: set CRON_SECRET to enable it",
        refused="Missing or wrong cron secret",
    )
)
AdminAuthorized = Depends(
    secret_guard(
        _admin_key,
        lambda settings: settings.admin_api_key,
        disabled="The admin routes are disabled: set MLS_SYNC_ADMIN_API_KEY to enable them",
        refused="Missing or wrong admin key",
    )
)
MetricsAuthorized = Depends(
    secret_guard(
        _metrics_token,
        lambda settings: settings.metrics_token,
        disabled=None,  # unset: open, as most exporters are
        refused="Missing or wrong metrics token",
    )
)


def looks_like_id(value: str) -> bool:
    return _ID.fullmatch(value) is not None


async def owned_connection(
    connection_id: str, user: CurrentUser, session: SessionDep
) -> ConnectionView:
    """The caller's MLS connection; another user's answers exactly like a missing one."""
    if not looks_like_id(connection_id):
        raise NotFound(CONNECTION_NOT_FOUND)
    return await connections.get_connection(session, connection_id, user_id=user.id)


async def owned_listing(listing_id: str, user: CurrentUser, session: SessionDep) -> Listing:
    if not looks_like_id(listing_id):
        raise NotFound(LISTING_NOT_FOUND)
    return await listings.get_listing(session, listing_id, user_id=user.id)


OwnedConnection = Annotated[ConnectionView, Depends(owned_connection)]
OwnedListing = Annotated[Listing, Depends(owned_listing)]


# What each guard may answer instead of the route, by the security scheme it names in the
# OpenAPI document: added to every operation that names the scheme (document_guards), so the
# document cannot forget one.
_REFUSED = {
    "401": "No or wrong `Authorization: Bearer` secret",
    "429": "Too many refused secrets from this address; see `Retry-After`",
}
GUARD_ANSWERS: dict[str, dict[str, str]] = {
    "ApiKey": _REFUSED,
    "CronSecret": {**_REFUSED, "503": "CRON_SECRET is not set"},
    "AdminKey": {**_REFUSED, "503": "MLS_SYNC_ADMIN_API_KEY is not set"},
    "MetricsToken": _REFUSED,
}
_ERROR = {"$ref": "#/components/schemas/ErrorOut"}


def document_guards(app: FastAPI) -> None:
    """Make the app's OpenAPI document name each guarded operation's refusals (an
    operation's own entries win)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = build()
            for path in document.get("paths", {}).values():
                for operation in path.values():
                    _add_refusals(operation)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _add_refusals(operation: dict[str, Any]) -> None:
    responses = operation.setdefault("responses", {})
    for requirement in operation.get("security", []):
        for scheme in requirement:
            for code, description in GUARD_ANSWERS.get(scheme, {}).items():
                responses.setdefault(
                    code,
                    {
                        "description": description,
                        "content": {"application/json": {"schema": _ERROR}},
                    },
                )
