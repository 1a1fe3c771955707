"""The caller's MLS connections: create, list, read, update (re-authenticate), delete."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from mls_sync.api.deps import CurrentUser, OwnedConnection, RuntimeDep, SessionDep
from mls_sync.api.schemas import (
    ErrorOut,
    MlsConnectionCreate,
    MlsConnectionOut,
    MlsConnectionUpdate,
    MlsCredentialsIn,
    Responses,
)
from mls_sync.services import connections

router = APIRouter(prefix="/api/mls-connections", tags=["MLS connections"])
_NOT_FOUND: Responses = {404: {"model": ErrorOut}}


def credentials_of(body: MlsCredentialsIn) -> connections.MlsCredentials:
    return connections.MlsCredentials(
        auth_kind=body.auth_kind,
        token=body.token,
        client_id=body.client_id,
        client_secret=body.client_secret,
        token_url=str(body.token_url) if body.token_url is not None else None,
        scope=body.scope,
        refresh_token=body.refresh_token,
        username=body.username,
        password=body.password,
    )


@router.post(
    "",
    response_model=MlsConnectionOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        404: {"model": ErrorOut, "description": "no shared feed with this `feedId`"},
        409: {"model": ErrorOut, "description": "you are a member of this feed already"},
    },
)
async def create_connection(
    body: MlsConnectionCreate, user: CurrentUser, runtime: RuntimeDep, session: SessionDep
) -> MlsConnectionOut:
    """Join a shared MLS feed (`feedId`), or connect an MLS (RESO Web API) with credentials of
    your own, stored encrypted and never shown."""
    given = body.model_fields_set & {"token", "client_id", "client_secret", "token_url"}
    connection = await connections.create_connection(
        session,
        runtime.cipher,
        egress=runtime.settings.egress_policy,
        user_id=user.id,
        feed_id=body.feed_id,
        base_url=str(body.base_url) if body.base_url is not None else None,
        credentials=credentials_of(body) if body.feed_id is None or given else None,
        name=body.name,
        agent_mls_id=body.agent_mls_id,
        office_mls_id=body.office_mls_id,
        provider=body.provider,
        key_field=body.key_field,
        filter_style=body.filter_style,
        profile_overrides=body.profile_overrides,
        status_overrides=body.status_overrides,
    )
    return MlsConnectionOut.model_validate(connection)


@router.get("", response_model=list[MlsConnectionOut])
async def list_connections(user: CurrentUser, session: SessionDep) -> list[MlsConnectionOut]:
    found = await connections.list_connections(session, user.id)
    return [MlsConnectionOut.model_validate(c) for c in found]


@router.get("/{connection_id}", response_model=MlsConnectionOut, responses=_NOT_FOUND)
async def get_connection(connection: OwnedConnection) -> MlsConnectionOut:
    return MlsConnectionOut.model_validate(connection)


@router.patch("/{connection_id}", response_model=MlsConnectionOut, responses=_NOT_FOUND)
async def update_connection(
    body: MlsConnectionUpdate,
    connection: OwnedConnection,
    user: CurrentUser,
    runtime: RuntimeDep,
    session: SessionDep,
) -> MlsConnectionOut:
    """Change the name, agent or office; on your own credentials, the base URL or the
    credentials (an expired connection becomes active again and its next sync uses them)."""
    updated = await connections.update_connection(
        session,
        runtime.cipher,
        connection.id,
        egress=runtime.settings.egress_policy,
        user_id=user.id,
        name=body.name,
        agent_mls_id=body.agent_mls_id,
        office_mls_id=body.office_mls_id,
        base_url=str(body.base_url) if body.base_url is not None else None,
        credentials=credentials_of(body.credentials) if body.credentials else None,
        status_overrides=body.status_overrides,
    )
    return MlsConnectionOut.model_validate(updated)


@router.delete(
    "/{connection_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**_NOT_FOUND, 409: {"model": ErrorOut, "description": "being synced"}},
)
async def delete_connection(
    connection: OwnedConnection, user: CurrentUser, runtime: RuntimeDep
) -> Response:
    """Delete the connection with its listings, their history and posts."""
    await connections.remove_connection(runtime.engine, connection.id, user_id=user.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
