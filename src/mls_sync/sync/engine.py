"""The sync engine: compare our listings with the MLS and apply what changed.

The normal path of `sync_connection` is incremental replication: ask the MLS only for records
modified since the connection's bookmark (sync/replicate.py), or, where the connection's profile
says `replication="entity_event"`, for the RESO EntityEvent log after its last sequence
(sync/entity_events.py), and apply each page of changes together with the new bookmark in one
transaction. A full check of every listing we hold (sync/full_check.py) runs when one is due
(never done, or older than the cadence) or when asked (`full=True`). `sync_listing` is always
a direct lookup. Every path applies a change the same way (sync/apply.py); this module holds
the public operations and a run's orchestration: the run row, the client, expiry, the
unpublish drain and the run's record.

A listing's failure is recorded and the sync goes on; only an expired credential stops a
connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import httpx
import structlog

from mls_sync.domain.errors import NotFound
from mls_sync.domain.policy import DEFAULT as DEFAULT_POLICY
from mls_sync.domain.policy import TransitionPolicy
from mls_sync.domain.results import SyncError, SyncResult
from mls_sync.domain.status import ConnectionState, ListingStatus
from mls_sync.mls.auth import TokenCache
from mls_sync.mls.client import MlsClient, ResoClient
from mls_sync.mls.errors import MLS_CONNECTION_EXPIRED, MlsAuthError
from mls_sync.mls.limits import Budgets
from mls_sync.mls.replication import replication_cap
from mls_sync.mls.transport import RetryPolicy
from mls_sync.observability.alerts import FinishedRun
from mls_sync.observability.metrics import METRICS
from mls_sync.observability.monitor import RunMonitor
from mls_sync.observability.reports import RunObserver
from mls_sync.store import deferred_runs
from mls_sync.store import repositories as repo
from mls_sync.store.crypto import SecretDecryptError, TokenCipher
from mls_sync.store.interface import Storage
from mls_sync.store.models import MlsConnection
from mls_sync.store.types import utcnow
from mls_sync.sync.apply import Applier, Held, RunScope, Target
from mls_sync.sync.clients import ClientFactory, ConnectionConfigError
from mls_sync.sync.entity_events import replicate_entity_events, starting_sequence
from mls_sync.sync.full_check import check_listings
from mls_sync.sync.guard import ConnectionGuard, LocalGuard
from mls_sync.sync.outcome import Outcome, ProgressCallback, summary
from mls_sync.sync.replicate import replicate_timestamps
from mls_sync.sync.unpublish import Unpublisher

__all__ = ["Outcome", "ProgressCallback", "SyncEngine", "summary"]

log = structlog.get_logger(__name__)


class SyncEngine:
    def __init__(
        self,
        db: Storage,
        cipher: TokenCipher,
        http: httpx.AsyncClient,
        unpublisher: Unpublisher,
        *,
        budgets: Budgets,
        batch_size: int = 50,
        concurrency: int = 4,
        policy: TransitionPolicy = DEFAULT_POLICY,
        full_check_every: timedelta = timedelta(hours=24),
        clock_skew: timedelta = timedelta(minutes=5),
        retry: RetryPolicy | None = None,
        token_cache: TokenCache | None = None,
        guard: ConnectionGuard | None = None,
    ) -> None:
        self.db = db
        self._cipher = cipher
        self._http = http
        self._unpublisher = unpublisher
        self.unpublisher = unpublisher  # public for the workers' periodic outbox drain
        self._budgets = budgets
        self._batch_size = batch_size
        self._concurrency = concurrency
        self._policy = policy
        self._applier = Applier(db, policy)
        self._full_check_every = full_check_every
        self._clock_skew = clock_skew
        self._clients = ClientFactory(
            http,
            cipher,
            budgets,
            retry=retry or RetryPolicy(),
            batch_size=batch_size,
            token_cache=token_cache,
        )
        # One sync per connection at a time (sync/runs.py takes it); the runtime passes a
        # LeaseGuard (a lease row in the database), LocalGuard serves unit tests.
        self.guard: ConnectionGuard = guard or LocalGuard()
        # Told about each run over every connection (sync/runs.py): EMF, the slow-run alert.
        self.run_observers: list[RunObserver] = []
        # Told about each connection's (or listing's) run when it ends: metrics and alerts
        # (observability/monitor.py); set by the composition root.
        self.run_monitor: RunMonitor | None = None

    # public operations

    async def sync_connection(
        self,
        connection_id: str,
        *,
        user_id: str | None = None,
        trigger: str = "manual",
        progress: ProgressCallback | None = None,
        full: bool | None = None,
        run_id: str | None = None,
    ) -> Outcome:
        """Replicate the connection's changes; with `full=True`, or when a full check is due,
        check every listing we hold instead. `run_id`: record into that (queued) run row
        instead of a new one (a worker running a deferred sync)."""
        async with self.db.transaction() as session:
            connection = await repo.get_mls_connection(session, connection_id, user_id=user_id)
            if connection is None:
                raise NotFound("MLS connection not found")
            listings = await session.listings.of_connection(connection.id)
            targets = [Target.of(listing) for listing in listings]
        if full is None:
            full = self.full_check_due(connection)
        return await self._sync_targets(
            connection,
            targets,
            trigger=trigger,
            scope="connection",
            progress=progress,
            mode="full" if full else "changes",
            run_id=run_id,
        )

    def full_check_due(self, connection: MlsConnection, now: datetime | None = None) -> bool:
        """Replication needs a starting point, and catches neither deleted records nor
        listings that left the feed: a full check runs first and then on the cadence."""
        if connection.bookmark_timestamp is None or connection.last_full_check_at is None:
            return True
        if self._replication(connection) == "entity_event" and (
            connection.entity_event_sequence is None
        ):
            return True  # the log needs a starting sequence, which a full check records
        return connection.last_full_check_at + self._full_check_every <= (now or utcnow())

    async def sync_listing(
        self,
        listing_id: str,
        *,
        user_id: str | None = None,
        trigger: str = "manual",
        run_id: str | None = None,
    ) -> Outcome:
        async with self.db.transaction() as session:
            listing = await repo.get_listing(session, listing_id, user_id=user_id)
            if listing is None:
                raise NotFound("Listing not found")
            connection = await repo.get_mls_connection(session, listing.mls_connection_id)
            if connection is None:  # guarded by a foreign key; kept for the type checker
                raise NotFound("MLS connection not found")
            targets = [Target.of(listing)]
        return await self._sync_targets(
            connection, targets, trigger=trigger, scope="listing", run_id=run_id
        )

    def mls_client(self, connection: MlsConnection) -> ResoClient:
        """The connection's RESO client on the engine's request budgets (imports, lookups).
        Raises SecretDecryptError or ConnectionConfigError."""
        return self._clients.build(connection)

    # the flow

    async def _sync_targets(
        self,
        connection: MlsConnection,
        targets: Sequence[Target],
        *,
        trigger: str,
        scope: str,
        progress: ProgressCallback | None = None,
        mode: str = "lookup",
        run_id: str | None = None,
    ) -> Outcome:
        """`mode`: "changes" (replication), "full" (a full check of the connection) or
        "lookup" (just these listings, no replication state touched)."""
        started = utcnow()
        bound = log.bind(connection_id=connection.id, trigger=trigger, scope=scope, mode=mode)
        result = SyncResult(total_listings=len(targets))
        async with self.db.transaction() as session:
            run = await deferred_runs.resume_run(session, run_id) if run_id else None
            if run is None:
                run = await repo.start_run(
                    session,
                    trigger=trigger,
                    scope=scope,
                    scope_id=connection.id if scope == "connection" else targets[0].id,
                    user_id=connection.user_id,
                )
        bound = bound.bind(sync_run_id=run.id)
        bound.info(f"Syncing status for {len(targets)} listings...")
        run_scope = RunScope(connection, run.id, result, bound)

        outcome = await self._ask_mls(run_scope, targets, mode, started, progress)
        if mode == "changes" and progress is not None:
            progress(len(targets), len(targets))  # replication reports once, when done
        await self._drain(targets, result, bound)
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
                totals=result.model_dump(
                    mode="json", by_alias=True, exclude={"errors", "status_changes"}
                ),
                errors=[e.to_wire() for e in result.errors],
                status_changes=[c.to_wire() for c in result.status_changes],
            )
        bound.info(
            f"Status sync complete: {result.updated_listings} updated, "
            f"{result.unpublished_posts} posts unpublished, {result.restored_listings} restored",
            errors=len(result.errors),
            success=outcome.success,
        )
        if self.run_monitor is not None:
            await self.run_monitor.run_finished(
                FinishedRun(
                    run_id=run.id,
                    connection_id=connection.id,
                    connection_name=connection.name,
                    user_id=connection.user_id,
                    trigger=trigger,
                    scope=scope,
                    success=outcome.success,
                    message=outcome.message,
                    started_at=started,
                    finished_at=utcnow(),
                    result=result,
                )
            )
        return outcome

    async def _ask_mls(
        self,
        scope: RunScope,
        targets: Sequence[Target],
        mode: str,
        started: datetime,
        progress: ProgressCallback | None,
    ) -> Outcome | None:
        """Ask the MLS the way `mode` says and apply its answers; an Outcome only when the
        connection itself failed."""
        connection = scope.connection
        if connection.state == ConnectionState.EXPIRED:
            # Known-bad credentials are not retried against the MLS: its budget is sacred.
            return Outcome(False, MLS_CONNECTION_EXPIRED, scope.result)
        try:
            client = self.mls_client(connection)
        except (SecretDecryptError, ConnectionConfigError) as exc:
            METRICS.error("config")
            scope.log.error("MLS connection cannot be used", error=str(exc))
            return Outcome(False, str(exc), scope.result)
        try:
            if mode == "changes":
                return await self._replicate(scope, client, targets, started)
            # Where the event log stands, read before the check: events that happen during
            # it are read again afterwards rather than missed.
            sequence = await self._log_position(scope, client) if mode == "full" else None
            outcome, complete = await check_listings(
                self._applier,
                scope,
                client,
                targets,
                concurrency=self._concurrency,
                progress=progress,
            )
        except MlsAuthError:
            return await self._expired(scope)
        await self._remember_filter_style(connection, client)
        if mode == "full" and complete:
            async with self.db.transaction() as session:
                await repo.finish_full_check(
                    session,
                    connection.id,
                    at=started,
                    bookmark=replication_cap(started, self._clock_skew),
                    entity_event_sequence=sequence,
                )
        return outcome

    async def _replicate(
        self, scope: RunScope, client: ResoClient, targets: Sequence[Target], started: datetime
    ) -> Outcome | None:
        held = Held(targets, scope.connection.key_field)
        if client.profile.replication == "entity_event":
            return await replicate_entity_events(self._applier, scope, client, held)
        return await replicate_timestamps(
            self._applier, scope, client, held, started=started, clock_skew=self._clock_skew
        )

    @staticmethod
    async def _log_position(scope: RunScope, client: ResoClient) -> int | None:
        if client.profile.replication != "entity_event":
            return None
        return await starting_sequence(client, scope)

    async def _drain(
        self,
        targets: Sequence[Target],
        result: SyncResult,
        bound: structlog.typing.FilteringBoundLogger,
    ) -> None:
        """Deliver the unpublish jobs this run queued (and any still due for its listings)."""
        drained = await self._unpublisher.drain(listing_ids=[t.id for t in targets])
        result.unpublished_posts += drained.unpublished
        METRICS.error("unpublish", len(drained.errors))
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

    async def _expired(self, scope: RunScope) -> Outcome:
        async with self.db.transaction() as session:
            await repo.mark_connection(
                session, scope.connection.id, ConnectionState.EXPIRED, MLS_CONNECTION_EXPIRED
            )
        METRICS.error("mls_auth")
        scope.log.error("MLS refused the connection's credentials", error=MLS_CONNECTION_EXPIRED)
        return Outcome(False, MLS_CONNECTION_EXPIRED, scope.result)

    async def _remember_filter_style(self, connection: MlsConnection, client: MlsClient) -> None:
        learned = getattr(client, "filter_style", connection.filter_style)
        if learned != connection.filter_style:
            async with self.db.transaction() as session:
                await repo.save_filter_style(session, connection.id, learned)
            connection.filter_style = learned

    def _replication(self, connection: MlsConnection) -> str:
        try:
            return self._clients.profile(connection).replication
        except ConnectionConfigError:
            return "timestamp"  # the run itself reports the misconfiguration
