"""The sync engine: compare our listings with the MLS and apply what changed.

For each batch of listings the MLS is asked once (the client follows server paging); batches of
one connection run concurrently within the credential's request budget, and their answers are
applied one at a time as they arrive, each status change in its own transaction together with
its history row and the unpublish jobs the policy calls for. A listing's failure is recorded and
the sync goes on; only an expired credential stops a connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx
import structlog

from mls_sync.domain.policy import DEFAULT as DEFAULT_POLICY
from mls_sync.domain.policy import TransitionPolicy
from mls_sync.domain.reso import LISTING_NOT_FOUND, StatusMapper, StatusMappingError
from mls_sync.domain.results import (
    AggregatedResult,
    ConnectionSyncResult,
    StatusChange,
    SyncError,
    SyncResult,
)
from mls_sync.domain.status import ConnectionState, ListingStatus
from mls_sync.mls.client import MlsClient, MlsRecord, ResoClient
from mls_sync.mls.errors import MLS_CONNECTION_EXPIRED, MlsAuthError, MlsRequestError
from mls_sync.mls.limits import RateBudgets
from mls_sync.store import repositories as repo
from mls_sync.store.crypto import SecretDecryptError, TokenCipher
from mls_sync.store.database import Database
from mls_sync.store.models import Listing, MlsConnection
from mls_sync.store.types import utcnow
from mls_sync.sync.unpublish import Unpublisher

log = structlog.get_logger(__name__)

# Called after each batch with (listings just checked, listings in this connection's sync).
ProgressCallback = Callable[[int, int], None]


class NotFoundError(LookupError):
    """No such connection or listing for this user (another user's ids look the same)."""


@dataclass
class Outcome:
    """What one operation did: the `success`/`message` pair and the result data."""

    success: bool
    message: str
    result: SyncResult


@dataclass(frozen=True)
class _Target:
    """A listing as the sync sees it: loaded before the MLS is asked, detached from sessions."""

    id: str
    listing_key: str
    mls_number: str
    status: ListingStatus

    def lookup_key(self, key_field: str) -> str:
        return self.listing_key if key_field == "ListingKey" else self.mls_number


@dataclass
class _Answer:
    """The MLS's answer for one batch: its records, or the error that cost the batch."""

    batch: list[_Target]
    records: dict[str, MlsRecord]
    error: MlsRequestError | None = None


class SyncEngine:
    def __init__(
        self,
        db: Database,
        cipher: TokenCipher,
        http: httpx.AsyncClient,
        unpublisher: Unpublisher,
        *,
        budgets: RateBudgets,
        batch_size: int = 50,
        concurrency: int = 4,
        policy: TransitionPolicy = DEFAULT_POLICY,
    ) -> None:
        self.db = db
        self._cipher = cipher
        self._http = http
        self._unpublisher = unpublisher
        self._budgets = budgets
        self._batch_size = batch_size
        self._concurrency = concurrency
        self._policy = policy

    # public operations

    async def sync_connection(
        self,
        connection_id: str,
        *,
        user_id: str | None = None,
        trigger: str = "manual",
        progress: ProgressCallback | None = None,
    ) -> Outcome:
        async with self.db.transaction() as session:
            connection = await repo.get_mls_connection(session, connection_id, user_id=user_id)
            if connection is None:
                raise NotFoundError("MLS connection not found")
            listings = await repo.connection_listings(session, connection.id)
            targets = [_target(listing) for listing in listings]
        return await self._sync_targets(
            connection, targets, trigger=trigger, scope="connection", progress=progress
        )

    async def sync_listing(
        self, listing_id: str, *, user_id: str | None = None, trigger: str = "manual"
    ) -> Outcome:
        async with self.db.transaction() as session:
            listing = await repo.get_listing(session, listing_id, user_id=user_id)
            if listing is None:
                raise NotFoundError("Listing not found")
            connection = await repo.get_mls_connection(session, listing.mls_connection_id)
            if connection is None:  # guarded by a foreign key; kept for the type checker
                raise NotFoundError("MLS connection not found")
            targets = [_target(listing)]
        return await self._sync_targets(connection, targets, trigger=trigger, scope="listing")

    async def sync_user(
        self, user_id: str, *, trigger: str = "manual", progress: ProgressCallback | None = None
    ) -> tuple[Outcome, AggregatedResult]:
        async with self.db.transaction() as session:
            if await repo.find_user(session, user_id) is None:
                raise NotFoundError("User not found")
            connection_ids = [c.id for c in await repo.user_connections(session, user_id)]
        # Different connections use different credentials: they may run side by side.
        outcomes = await asyncio.gather(
            *(
                self.sync_connection(cid, trigger=trigger, progress=progress)
                for cid in connection_ids
            )
        )
        aggregated = AggregatedResult()
        for cid, outcome in zip(connection_ids, outcomes, strict=True):
            aggregated.add(outcome.result)
            aggregated.connections.append(
                ConnectionSyncResult(
                    connection_id=cid,
                    success=outcome.success,
                    message=outcome.message,
                    **outcome.result.model_dump(),
                )
            )
        failed = [o for o in outcomes if not o.success]
        success = not outcomes or len(failed) < len(outcomes)
        message = (
            f"Synced {len(outcomes) - len(failed)} of {len(outcomes)} MLS connections: "
            + summary(aggregated)
        )
        return Outcome(success, message, aggregated), aggregated

    # the flow

    async def _sync_targets(
        self,
        connection: MlsConnection,
        targets: Sequence[_Target],
        *,
        trigger: str,
        scope: str,
        progress: ProgressCallback | None = None,
    ) -> Outcome:
        bound = log.bind(connection_id=connection.id, trigger=trigger, scope=scope)
        result = SyncResult(total_listings=len(targets))
        async with self.db.transaction() as session:
            run = await repo.start_run(
                session,
                trigger=trigger,
                scope=scope,
                scope_id=connection.id if scope == "connection" else targets[0].id,
                user_id=connection.user_id,
            )
        bound = bound.bind(sync_run_id=run.id)
        bound.info(f"Syncing status for {len(targets)} listings...")

        outcome = await self._check_listings(connection, targets, result, run.id, bound, progress)
        drained = await self._unpublisher.drain(listing_ids=[t.id for t in targets])
        result.unpublished_posts += drained.unpublished
        for listing_id, mls_number, message in drained.errors:
            result.errors.append(
                SyncError(listing_id=listing_id, mls_number=mls_number, error=message)
            )
        for change in result.status_changes:
            if change.new_status is ListingStatus.SOLD:
                count = drained.unpublished_by_listing.get(change.listing_id, 0)
                bound.info(
                    f"Listing {change.mls_number} marked as sold, unpublished {count} posts",
                    listing_id=change.listing_id,
                    mls_number=change.mls_number,
                )
        if outcome is None:
            outcome = Outcome(True, summary(result), result)
        outcome.result = result

        async with self.db.transaction() as session:
            stored = await session.get(MlsConnection, connection.id)
            if stored is not None and outcome.success:
                stored.last_sync_at = utcnow()
            await repo.finish_run(
                session,
                run.id,
                success=outcome.success,
                message=outcome.message,
                totals=result.model_dump(mode="json", by_alias=True, exclude={"errors"}),
                errors=[e.to_wire() for e in result.errors],
            )
        bound.info(
            f"Status sync complete: {result.updated_listings} updated, "
            f"{result.unpublished_posts} posts unpublished, {result.restored_listings} restored",
            errors=len(result.errors),
            success=outcome.success,
        )
        return outcome

    async def _check_listings(
        self,
        connection: MlsConnection,
        targets: Sequence[_Target],
        result: SyncResult,
        run_id: str,
        bound: structlog.typing.FilteringBoundLogger,
        progress: ProgressCallback | None,
    ) -> Outcome | None:
        """Ask the MLS about every target and apply the answers; returns an Outcome only when
        the connection itself failed."""
        if connection.state == ConnectionState.EXPIRED:
            # Known-bad credentials are not retried against the MLS: its budget is sacred.
            return Outcome(False, MLS_CONNECTION_EXPIRED, result)
        try:
            client = self._client_for(connection)
        except SecretDecryptError as exc:
            return Outcome(False, str(exc), result)
        if not targets:
            return None

        batches = [
            list(targets[i : i + client.batch_size])
            for i in range(0, len(targets), client.batch_size)
        ]
        gate = asyncio.Semaphore(self._concurrency)

        async def fetch(batch: list[_Target]) -> _Answer:
            async with gate:
                keys = [t.lookup_key(client.key_field) for t in batch]
                try:
                    return _Answer(batch, await client.fetch_by_keys(keys))
                except MlsRequestError as exc:
                    return _Answer(batch, {}, error=exc)

        tasks = [asyncio.ensure_future(fetch(batch)) for batch in batches]
        failed_requests = 0
        try:
            for next_done in asyncio.as_completed(tasks):
                answer = await next_done
                if answer.error is not None:
                    failed_requests += 1
                    self._batch_failed(answer, result, bound)
                else:
                    await self._apply_batch(
                        connection, answer.batch, answer.records, result, run_id, bound
                    )
                if progress is not None:
                    progress(len(answer.batch), len(targets))
        except MlsAuthError:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            async with self.db.transaction() as session:
                await repo.mark_connection(
                    session, connection.id, ConnectionState.EXPIRED, MLS_CONNECTION_EXPIRED
                )
            bound.error("MLS refused the connection's credentials", error=MLS_CONNECTION_EXPIRED)
            return Outcome(False, MLS_CONNECTION_EXPIRED, result)
        if failed_requests == len(batches):
            return Outcome(False, f"MLS unreachable: {result.errors[0].error}", result)
        return None

    @staticmethod
    def _batch_failed(
        answer: _Answer, result: SyncResult, bound: structlog.typing.FilteringBoundLogger
    ) -> None:
        message = str(answer.error)
        for target in answer.batch:
            result.errors.append(
                SyncError(listing_id=target.id, mls_number=target.mls_number, error=message)
            )
        bound.warning("MLS request failed", error=message, listings=len(answer.batch))

    async def _apply_batch(
        self,
        connection: MlsConnection,
        batch: Sequence[_Target],
        records: dict[str, MlsRecord],
        result: SyncResult,
        run_id: str,
        bound: structlog.typing.FilteringBoundLogger,
    ) -> None:
        mapper = StatusMapper(connection.status_overrides or None)
        key_field = connection.key_field
        for target in batch:
            record = records.get(target.lookup_key(key_field))
            try:
                if record is None:
                    raise StatusMappingError(LISTING_NOT_FOUND)
                new_status = mapper.map(record.standard_status)
                await self._apply(target, new_status, record, result, run_id, bound)
            except StatusMappingError as exc:
                result.errors.append(
                    SyncError(listing_id=target.id, mls_number=target.mls_number, error=str(exc))
                )
                bound.warning(
                    "listing not synced",
                    listing_id=target.id,
                    mls_number=target.mls_number,
                    error=str(exc),
                )
            except Exception as exc:  # one listing's failure never stops the others
                bound.exception("listing sync failed", listing_id=target.id)
                result.errors.append(
                    SyncError(
                        listing_id=target.id,
                        mls_number=target.mls_number,
                        error=f"Internal error: {type(exc).__name__}",
                    )
                )

    async def _apply(
        self,
        target: _Target,
        new_status: ListingStatus,
        record: MlsRecord,
        result: SyncResult,
        run_id: str,
        bound: structlog.typing.FilteringBoundLogger,
    ) -> None:
        async with self.db.transaction() as session:
            listing = await repo.lock_listing(session, target.id)
            if listing is None:
                return  # deleted while we were asking the MLS
            old_status = ListingStatus(listing.status)
            decision = self._policy.decide(old_status, new_status)
            if not decision.changed:
                return
            await repo.record_status_change(
                session,
                listing,
                new_status,
                mls_modified_at=record.modification_timestamp,
                sync_run_id=run_id,
            )
            queued = 0
            if decision.unpublishes_posts:
                queued = await repo.enqueue_unpublish_jobs(session, listing.id)
        result.updated_listings += 1
        result.status_changes.append(
            StatusChange(
                listing_id=target.id,
                mls_number=target.mls_number,
                old_status=old_status,
                new_status=new_status,
            )
        )
        fields = {
            "listing_id": target.id,
            "mls_number": target.mls_number,
            "old_status": str(old_status),
            "new_status": str(new_status),
        }
        bound.info("status changed", unpublish_jobs=queued, **fields)
        if decision.is_restoration:
            result.restored_listings += 1
            bound.info(f"Listing {target.mls_number} restored to active", **fields)
        if decision.is_relisting:
            bound.info(f"Listing {target.mls_number} relisted", **fields)

    def _client_for(self, connection: MlsConnection) -> MlsClient:
        token = self._cipher.decrypt(connection.credentials_encrypted)
        return ResoClient(
            self._http,
            base_url=connection.base_url,
            token=token,
            key_field=connection.key_field,
            filter_style=connection.filter_style,
            batch_size=self._batch_size,
            limiter=self._budgets.for_credential(connection.base_url, token),
        )


def summary(result: SyncResult) -> str:
    text = (
        f"{result.total_listings} listings checked, {result.updated_listings} updated, "
        f"{result.unpublished_posts} posts unpublished, {result.restored_listings} restored"
    )
    if result.errors:
        text += f", {len(result.errors)} errors"
    return text


def _target(listing: Listing) -> _Target:
    return _Target(
        id=listing.id,
        listing_key=listing.listing_key,
        mls_number=listing.mls_number,
        status=ListingStatus(listing.status),
    )
