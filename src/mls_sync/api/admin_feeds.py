"""The operator's MLS feeds: `/api/admin/feeds`, behind `Authorization: Bearer
$MLS_SYNC_ADMIN_API_KEY` (compared in constant time; 503 while unset). Users never see these
routes' feeds except through their own connections' `feedId`."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response, status

from mls_sync.api.connections import credentials_of
from mls_sync.api.deps import AdminAuthorized, RuntimeDep, SessionDep, looks_like_id
from mls_sync.api.schemas import ErrorOut, MlsFeedCreate, MlsFeedOut, MlsFeedUpdate, Responses
from mls_sync.domain.errors import FEED_NOT_FOUND, NotFound
from mls_sync.domain.results import SyncActionResponse, SyncResult
from mls_sync.services import feeds
from mls_sync.services import sync as sync_service
from mls_sync.services.records import MlsFeed, UnitOfWork

router = APIRouter(
    prefix="/api/admin/feeds",
    tags=["MLS feeds (operator)"],
    dependencies=[AdminAuthorized],
    responses={401: {"model": ErrorOut}, 503: {"model": ErrorOut}},
)
_NOT_FOUND: Responses = {404: {"model": ErrorOut}}


async def _feed(session: UnitOfWork, feed_id: str) -> MlsFeed:
    if not looks_like_id(feed_id):
        raise NotFound(FEED_NOT_FOUND)
    return await feeds.get_feed(session, feed_id)


async def _out(session: UnitOfWork, feed: MlsFeed) -> MlsFeedOut:
    return MlsFeedOut.model_validate(await feeds.view(session, feed))


@router.post("", response_model=MlsFeedOut, status_code=status.HTTP_201_CREATED)
async def create_feed(body: MlsFeedCreate, runtime: RuntimeDep, session: SessionDep) -> MlsFeedOut:
    """A shared feed with the credential the MLS (or its vendor) issued to us."""
    settings = feeds.FeedSettings(
        base_url=str(body.base_url),
        credentials=credentials_of(body.credentials),
        name=body.name,
        provider=body.provider,
        key_field=body.key_field,
        filter_style=body.filter_style,
        profile_overrides=body.profile_overrides,
        status_overrides=body.status_overrides,
        cadence_seconds=body.cadence_seconds,
    )
    feed = await feeds.add_feed(
        session,
        runtime.cipher,
        settings,
        owner_user_id=None,
        egress=runtime.settings.egress_policy,
    )
    return await _out(session, feed)


@router.get("", response_model=list[MlsFeedOut])
async def list_feeds(session: SessionDep) -> list[MlsFeedOut]:
    """Every feed, shared and private (credentials are never shown)."""
    return [MlsFeedOut.model_validate(v) for v in await feeds.list_feeds(session)]


@router.get("/{feed_id}", response_model=MlsFeedOut, responses=_NOT_FOUND)
async def get_feed(feed_id: str, session: SessionDep) -> MlsFeedOut:
    return await _out(session, await _feed(session, feed_id))


@router.patch("/{feed_id}", response_model=MlsFeedOut, responses=_NOT_FOUND)
async def update_feed(
    feed_id: str, body: MlsFeedUpdate, runtime: RuntimeDep, session: SessionDep
) -> MlsFeedOut:
    """Rename, move, re-authenticate (an expired feed and its connections become active
    again), change the status mapping or the cadence."""
    feed = await _feed(session, feed_id)
    await feeds.update_feed(
        session,
        runtime.cipher,
        feed,
        egress=runtime.settings.egress_policy,
        name=body.name,
        base_url=str(body.base_url) if body.base_url is not None else None,
        credentials=credentials_of(body.credentials) if body.credentials else None,
        status_overrides_given=body.status_overrides,
        cadence_seconds=body.cadence_seconds,
    )
    return await _out(session, feed)


@router.delete(
    "/{feed_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**_NOT_FOUND, 409: {"model": ErrorOut, "description": "in use, or running"}},
)
async def delete_feed(
    feed_id: str,
    runtime: RuntimeDep,
    force: bool = Query(False, description="also delete its connections and their listings"),
) -> Response:
    """Delete the feed and its replica; refused (409) while connections use it, unless
    `force`."""
    if not looks_like_id(feed_id):
        raise NotFound(FEED_NOT_FOUND)
    await feeds.remove_feed(runtime.engine, feed_id, force=force)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{feed_id}/sync",
    response_model=SyncActionResponse[SyncResult],
    responses={**_NOT_FOUND, 409: {"model": ErrorOut, "description": "being synced"}},
)
async def sync_feed(
    feed_id: str,
    runtime: RuntimeDep,
    full: bool = Query(False, description="reconcile the feed too"),
) -> SyncActionResponse[SyncResult]:
    """Run the feed now, for every connection in it; the answer sums their results."""
    if not looks_like_id(feed_id):
        raise NotFound(FEED_NOT_FOUND)
    return await sync_service.sync_feed(runtime.engine, feed_id, trigger="api", full=full or None)
