"""The caller's platform connections: the OAuth tokens the sync uses to delete posts."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response, status

from mls_sync import management
from mls_sync.api.deps import CurrentUser, RuntimeDep, SessionDep
from mls_sync.api.errors import invalid
from mls_sync.api.schemas import ErrorOut, PlatformConnectionOut, PlatformConnectionSet
from mls_sync.management import Platform
from mls_sync.store import repositories as repo
from mls_sync.store.models import PlatformConnection

router = APIRouter(prefix="/api/platform-connections", tags=["platform connections"])


def out(connection: PlatformConnection) -> PlatformConnectionOut:
    return PlatformConnectionOut(
        id=connection.id,
        platform=connection.platform,
        state=connection.state,
        state_message=connection.state_message,
        expires_at=connection.expires_at,
        has_refresh_token=connection.refresh_token_encrypted is not None,
        login=connection.login,
        created_at=connection.created_at,
    )


@router.get("", response_model=list[PlatformConnectionOut])
async def list_platform_connections(
    user: CurrentUser, session: SessionDep
) -> list[PlatformConnectionOut]:
    return [out(c) for c in await repo.user_platform_connections(session, user.id)]


@router.put("/{platform}", response_model=PlatformConnectionOut)
async def set_platform_connection(
    platform: Platform,
    body: PlatformConnectionSet,
    user: CurrentUser,
    runtime: RuntimeDep,
    session: SessionDep,
) -> PlatformConnectionOut:
    """Store (or replace) the tokens for one platform, encrypted; they are never shown."""
    try:
        connection = await management.set_platform_connection(
            session,
            runtime.cipher,
            user_id=user.id,
            platform=platform,
            access_token=body.access_token,
            refresh_token=body.refresh_token,
            expires_at=body.expires_at,
            login=body.login,
        )
    except management.InvalidInput as exc:
        raise invalid(exc) from exc
    return out(connection)


@router.delete(
    "/{platform}", status_code=status.HTTP_204_NO_CONTENT, responses={404: {"model": ErrorOut}}
)
async def delete_platform_connection(
    platform: Platform, user: CurrentUser, session: SessionDep
) -> Response:
    """Forget the tokens: the platform's posts stay published until it is connected again."""
    if not await repo.delete_platform_connection(session, user.id, platform.value):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Platform connection not found")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
