"""The caller's platform connections: the OAuth tokens the sync uses to delete posts."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from mls_sync.api.deps import CurrentUser, RuntimeDep, SessionDep
from mls_sync.api.schemas import ErrorOut, PlatformConnectionOut, PlatformConnectionSet
from mls_sync.services import platforms
from mls_sync.services.platforms import Platform
from mls_sync.services.records import PlatformConnection

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
    return [out(c) for c in await platforms.list_platform_connections(session, user.id)]


@router.put("/{platform}", response_model=PlatformConnectionOut)
async def set_platform_connection(
    platform: Platform,
    body: PlatformConnectionSet,
    user: CurrentUser,
    runtime: RuntimeDep,
    session: SessionDep,
) -> PlatformConnectionOut:
    """Store (or replace) the tokens for one platform, encrypted; they are never shown."""
    connection = await platforms.set_platform_connection(
        session,
        runtime.cipher,
        user_id=user.id,
        platform=platform,
        access_token=body.access_token,
        refresh_token=body.refresh_token,
        expires_at=body.expires_at,
        login=body.login,
    )
    return out(connection)


@router.delete(
    "/{platform}", status_code=status.HTTP_204_NO_CONTENT, responses={404: {"model": ErrorOut}}
)
async def delete_platform_connection(
    platform: Platform, user: CurrentUser, session: SessionDep
) -> Response:
    """Forget the tokens: the platform's posts stay published until it is connected again."""
    await platforms.forget_platform_connection(session, user.id, platform)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
