"""The sync engine: replicate each MLS feed once and apply what changed to every listing held in
it, whoever holds it.

A feed's run (`sync_feed`) asks the MLS only for what changed since the feed's bookmark
(sync/replicate.py), or, where the profile says `replication="entity_event"`, for the RESO
EntityEvent log after its last sequence (sync/entity_events.py). Each page goes into the feed's
local replica and, in the same transaction, to every holder of its keys (sync/fanout.py), with
the new bookmark. A feed's first run loads the whole feed that way (resumable: each page
commits its bookmark); a reconciliation (sync/reconcile.py) runs when it is due (daily by
default) or when asked (`full=True`). Nothing here asks the MLS about one listing, except
`sync_listing`, a direct lookup.

The operations on connections keep their contract: `sync_connection` catches the connection's
feed up (one run, shared with every other member of the feed) and reports that connection's
listings; the feed's run row holds the totals over every member, and each member that had
changes (or asked) gets its own row, pointing at the feed's.

A listing's failure is recorded and the run goes on; only an expired credential stops a feed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx
import structlog

from mls_sync.domain.errors import (
    CONNECTION_NOT_FOUND,
    LISTING_NOT_FOUND,
    NotFound,
    internal_error,
)
from mls_sync.domain.policy import DEFAULT as DEFAULT_POLICY
from mls_sync.domain.policy import TransitionPolicy
from mls_sync.domain.reso import StatusMapper
from mls_sync.domain.results import ConnectionSyncResult, SyncError, SyncResult
from mls_sync.domain.status import ConnectionState, ListingStatus
from mls_sync.mls.auth import TokenCache
from mls_sync.mls.client import ResoClient
from mls_sync.mls.errors import (
    MLS_CONNECTION_EXPIRED,
    MlsAuthError,
    MlsCredentialSuspended,
    MlsRequestError,
    suspended_message,
)
from mls_sync.mls.limits import Budgets
from mls_sync.mls.replication import replication_cap
from mls_sync.mls.transport import RetryPolicy
from mls_sync.observability.alerts import FinishedRun, credential_suspended_alert
from mls_sync.observability.metrics import METRICS
from mls_sync.observability.monitor import RunMonitor
from mls_sync.observability.reports import RunObserver
from mls_sync.store import deferred_runs
from mls_sync.store import repositories as repo
from mls_sync.store.crypto import SecretDecryptError, TokenCipher
from mls_sync.store.interface import Storage, UnitOfWork
from mls_sync.store.models import MlsConnection, MlsFeed
from mls_sync.store.types import utcnow
from mls_sync.sync.apply import Applier, RunScope, Target, judge, listing_error
from mls_sync.sync.bookkeeping import (
    Opener,
    QuietCloser,
    QuietRun,
    finish_row,
    open_feed_run,
)
from mls_sync.sync.clients import ClientFactory, ConnectionConfigError
from mls_sync.sync.entity_events import replicate_entity_events, starting_sequence
from mls_sync.sync.fanout import fan_out
from mls_sync.sync.guard import ConnectionGuard, LocalGuard
from mls_sync.sync.mls_logins import feed_login_stores
from mls_sync.sync.outcome import Outcome, ProgressCallback, summary
from mls_sync.sync.reconcile import compare_held, reconcile
from mls_sync.sync.replicate import replicate_timestamps
from mls_sync.sync.suspensions import suspend_credential
from mls_sync.sync.unpublish import Unpublisher

__all__ = ["FeedOutcome", "Outcome", "ProgressCallback", "SyncEngine", "summary"]

log = structlog.get_logger(__name__)


@dataclass
class FeedOutcome:
    """One feed run: whether the feed could be asked, and each member connection's part."""

    feed_id: str
    run_id: str
    failure: str | None
    members: list[str]
    counts: dict[str, int]
    results: dict[str, SyncResult] = field(default_factory=dict)
    records_read: int = 0

    def outcome_for(self, connection_id: str) -> Outcome:
        result = self.results.get(connection_id) or SyncResult()
        result.total_listings = self.counts.get(connection_id, 0)
        if self.failure is not None:
            return Outcome(False, self.failure, result)
        return Outcome(True, summary(result), result)

    def part_of(self, connection_id: str) -> ConnectionSyncResult:
        """The connection's part, as a run over many connections reports it."""
        outcome = self.outcome_for(connection_id)
        return ConnectionSyncResult(
            connection_id=connection_id,
            success=outcome.success,
            message=outcome.message,
            **outcome.result.model_dump(),
        )

    def whole(self) -> Outcome:
        """The feed's run over every member: the summed result."""
        total = SyncResult()
        for connection_id in self.members:
            part = self.outcome_for(connection_id).result
            total.total_listings += part.total_listings
            total.updated_listings += part.updated_listings
            total.unpublished_posts += part.unpublished_posts
            total.restored_listings += part.restored_listings
            total.errors.extend(part.errors)
            total.status_changes.extend(part.status_changes)
        if self.failure is not None:
            return Outcome(False, self.failure, total)
        return Outcome(True, f"{self.records_read} MLS records read: {summary(total)}", total)


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
        policy: TransitionPolicy = DEFAULT_POLICY,
        full_check_every: timedelta = timedelta(hours=24),
        clock_skew: timedelta = timedelta(minutes=5),
        retry: RetryPolicy | None = None,
        token_cache: TokenCache | None = None,
        guard: ConnectionGuard | None = None,
        run_deadline: timedelta = timedelta(seconds=600),
    ) -> None:
        self.db = db
        self._cipher = cipher
        self._http = http
        self.unpublisher = unpublisher  # public for the workers' periodic outbox drain
        self._batch_size = batch_size
        self._policy = policy
        self._applier = Applier(db, policy)
        self._reconcile_every = full_check_every
        self._clock_skew = clock_skew
        # MLS_SYNC_CONNECTION_RUN_SECONDS: no MLS (slow, dripping, or a budget gone tiny) and
        # no platform holds a feed's run, its lease and the cron request past this.
        self._run_deadline = run_deadline
        self._clients = ClientFactory(
            http,
            cipher,
            budgets,
            retry=retry or RetryPolicy(),
            batch_size=batch_size,
            token_cache=token_cache,
            login_store=feed_login_stores(db, cipher),
        )
        # One run per feed at a time (sync/runs.py takes it); the runtime passes a LeaseGuard
        # (a lease row in the database), LocalGuard serves unit tests.
        self.guard: ConnectionGuard = guard or LocalGuard()
        # Told about each run over every feed (sync/runs.py): EMF, the slow-run alert.
        self.run_observers: list[RunObserver] = []
        # Told about each connection's (or listing's) run when it ends: metrics and alerts
        # (observability/monitor.py); set by the composition root.
        self.run_monitor: RunMonitor | None = None

    # public operations

    async def feed_of_connection(self, connection_id: str, *, user_id: str | None) -> str:
        """The connection's feed id; raises NotFound (another user's answers the same)."""
        async with self.db.transaction() as session:
            connection = await repo.get_mls_connection(session, connection_id, user_id=user_id)
            if connection is None:
                raise NotFound(CONNECTION_NOT_FOUND)
            return connection.feed_id

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
        """Catch the connection's feed up and report the connection's listings. `full=True`
        reconciles the feed too. `run_id`: record the connection's part into that (queued)
        run row instead of a new one (a worker running a deferred sync)."""
        feed_id = await self.feed_of_connection(connection_id, user_id=user_id)
        ran = await self.sync_feed(
            feed_id, trigger=trigger, progress=progress, full=full, asked={connection_id: run_id}
        )
        return ran.outcome_for(connection_id)

    def reconcile_due(self, feed: MlsFeed, now: datetime | None = None) -> bool:
        """Replication catches neither records that leave the feed silently nor a change it
        missed: a reconciliation runs on the cadence (the first load counts as one)."""
        if feed.reconciled_at is None:
            return True
        return feed.reconciled_at + self._reconcile_every <= (now or utcnow())

    async def sync_feed(
        self,
        feed_id: str,
        *,
        trigger: str = "manual",
        progress: ProgressCallback | None = None,
        full: bool | None = None,
        asked: Mapping[str, str | None] | None = None,
        run_id: str | None = None,
        opener: Opener | None = None,
        quiet: QuietCloser | None = None,
    ) -> FeedOutcome:
        """One run of the feed. `asked`: member connections that asked for this run (each
        gets its own run row whatever happened; a value is a queued row to record into).
        `run_id`: a queued row to record the feed's run into (a worker's job). A cron cycle
        opens its feeds' runs and closes the quiet ones together (`opener`, `quiet`:
        sync/bookkeeping.py)."""
        asked = dict(asked or {})
        await self._take_over_claims(feed_id)
        opened = await opener.submit(feed_id) if opener is not None else None
        if opened is None:
            opened = await open_feed_run(self.db, feed_id, trigger=trigger, run_id=run_id)
        feed, counts, run_id, started = opened.feed, opened.counts, opened.run_id, opened.started
        members = list(counts)
        bound = log.bind(feed_id=feed.id, trigger=trigger, sync_run_id=run_id)
        # The product spec's log line, for the listings this one run serves.
        bound.info(f"Syncing status for {sum(counts.values())} listings...", members=len(members))
        scope = RunScope(feed, run_id, bound)
        failure = None
        deadline = asyncio.timeout(self._run_deadline.total_seconds())
        try:
            async with deadline:
                failure = await self._ask_mls(scope, started, progress, full)
                await self._drain(scope, asked)
        except TimeoutError:
            if not deadline.expired():
                await self._finish_crashed(run_id, "TimeoutError")
                raise
            # Committed pages (and their bookmark) stay: the next run goes on from them.
            METRICS.error("deadline")
            failure = run_deadline_passed(self._run_deadline)
            bound.error("feed run stopped at its deadline", error=failure)
        except Exception as exc:
            # A bug: the row is finished (never left `running`), the crash is the caller's.
            await self._finish_crashed(run_id, type(exc).__name__)
            raise
        outcome = FeedOutcome(
            feed.id, run_id, failure, members, counts, scope.results, scope.records_read
        )
        await self._record(scope, outcome, asked, trigger=trigger, started=started, quiet=quiet)
        return outcome

    async def _finish_crashed(self, run_id: str, kind: str) -> None:
        async with self.db.transaction() as session:
            message = internal_error(kind)
            await finish_row(session, run_id, Outcome(False, message, SyncResult()))

    async def sync_listing(
        self,
        listing_id: str,
        *,
        user_id: str | None = None,
        trigger: str = "manual",
        run_id: str | None = None,
    ) -> Outcome:
        """A direct lookup of one listing (`ListingKey in (...)`, or `ListingId` where the
        vendor cannot filter on keys, as on MLS Grid); its answer also refreshes the replica."""
        started = utcnow()
        async with self.db.transaction() as session:
            listing = await repo.get_listing(session, listing_id, user_id=user_id)
            if listing is None:
                raise NotFound(LISTING_NOT_FOUND)
            connection = await session.get(MlsConnection, listing.mls_connection_id)
            if connection is None:  # guarded by a foreign key; kept for the type checker
                raise NotFound(CONNECTION_NOT_FOUND)
            feed = await repo.feed_of(session, connection)
            target = Target.of(listing)
            run = await deferred_runs.resume_or_start(
                session,
                run_id,
                trigger=trigger,
                scope="listing",
                scope_id=listing.id,
                user_id=connection.user_id,
            )
        scope = RunScope(feed, run.id, log.bind(feed_id=feed.id, sync_run_id=run.id))
        result = scope.result(connection.id)
        result.total_listings = 1
        failure = await self._look_up(scope, target)
        await self._drain(scope, {connection.id: run.id})
        outcome = (
            Outcome(False, failure, result)
            if failure is not None
            else Outcome(True, summary(result), result)
        )
        async with self.db.transaction() as session:
            await finish_row(session, run.id, outcome)
        await self._monitor(run.id, connection, trigger, "listing", outcome, started)
        return outcome

    async def _take_over_claims(self, feed_id: str) -> None:
        """A run that took over the feed from a holder that died also takes over that
        holder's claimed unpublish jobs: they are due now, so this run's drain finishes what
        the dead one started instead of waiting out its claims (a crash costs one cycle)."""
        taken_over_from = getattr(self.guard, "taken_over_from", None)
        dead = taken_over_from(feed_id) if taken_over_from is not None else None
        if dead is None:
            return
        async with self.db.transaction() as session:
            released = await session.outbox.release_claims(dead, now=self.unpublisher.now())
        if released:
            log.warning(
                "took over a dead holder's unpublish claims", feed_id=feed_id, jobs=released
            )

    def mls_client(self, feed: MlsFeed) -> ResoClient:
        """The feed's RESO client on the engine's request budgets (lookups).
        Raises SecretDecryptError or ConnectionConfigError."""
        return self._clients.build(feed)

    # the flow

    async def _client_or_failure(self, scope: RunScope) -> ResoClient | str:
        feed = scope.feed
        if feed.state == ConnectionState.EXPIRED:
            # Known-bad credentials are not retried against the MLS: its budget is sacred.
            return MLS_CONNECTION_EXPIRED
        suspended = feed.suspension(utcnow())
        if suspended is not None:
            # The vendor's cool-down: not one request before it ends (MLS Grid keeps a token
            # suspended while its usage stays high).
            return suspended_message(suspended)
        try:
            return self.mls_client(feed)
        except (SecretDecryptError, ConnectionConfigError) as exc:
            METRICS.error("config")
            scope.log.error("MLS feed cannot be used", error=str(exc))
            return str(exc)

    async def _ask_mls(
        self,
        scope: RunScope,
        started: datetime,
        progress: ProgressCallback | None,
        full: bool | None,
    ) -> str | None:
        """Replicate (or load) the feed and reconcile it when due; why not, when the feed
        itself failed."""
        client = await self._client_or_failure(scope)
        if isinstance(client, str):
            return client
        feed = scope.feed
        try:
            if feed.loaded_at is None:
                failure = await self._load(scope, client, started, progress)
            else:
                failure = await self._replicate(scope, client, started, progress)
                if failure is None and (full or self.reconcile_due(feed, started)):
                    # An event log that could not be read at the load gets its start here.
                    sequence = None
                    if client.profile.replication == "entity_event" and (
                        feed.entity_event_sequence is None
                    ):
                        sequence = await starting_sequence(client, scope)
                    failure = await reconcile(self._applier, scope, client, started=started)
                    if failure is None:
                        async with self.db.transaction() as session:
                            await repo.finish_load(
                                session,
                                feed.id,
                                at=started,
                                bookmark=None,
                                entity_event_sequence=sequence,
                            )
        except MlsAuthError:
            return await self._expired(scope)
        except MlsCredentialSuspended as exc:
            return await self._suspended(scope, exc.until)
        await self._remember_filter_style(feed, client)
        return failure

    async def _load(
        self,
        scope: RunScope,
        client: ResoClient,
        started: datetime,
        progress: ProgressCallback | None,
    ) -> str | None:
        """The feed's first load: every record, from where an interrupted load stopped."""
        feed = scope.feed
        # Where the event log stands, read before the load: events that happen during it
        # are read again afterwards rather than missed.
        sequence = None
        if client.profile.replication == "entity_event":
            sequence = await starting_sequence(client, scope)
        scope.log.info("Loading the MLS feed's replica...")
        failure = await replicate_timestamps(
            self._applier,
            scope,
            client,
            started=started,
            clock_skew=self._window(client),
            progress=progress,
        )
        if failure is not None:
            return failure
        async with self.db.transaction() as session:
            await repo.finish_load(
                session,
                feed.id,
                at=started,
                bookmark=replication_cap(started, self._window(client)),
                entity_event_sequence=sequence,
            )
        feed.loaded_at = feed.loaded_at or started
        await compare_held(self._applier, scope, _mapper(feed))
        return None

    async def _replicate(
        self,
        scope: RunScope,
        client: ResoClient,
        started: datetime,
        progress: ProgressCallback | None,
    ) -> str | None:
        if client.profile.replication == "entity_event" and (
            scope.feed.entity_event_sequence is not None
        ):
            return await replicate_entity_events(self._applier, scope, client, started=started)
        return await replicate_timestamps(
            self._applier,
            scope,
            client,
            started=started,
            clock_skew=self._window(client),
            progress=progress,
        )

    def _window(self, client: ResoClient) -> timedelta:
        """How far behind the run's start the bookmark may move: the clock skew allowed for
        every MLS, or the vendor's own replication window if longer (Spark: 20 minutes)."""
        window = timedelta(seconds=client.profile.replication_window_seconds)
        return max(self._clock_skew, window)

    async def _look_up(self, scope: RunScope, target: Target) -> str | None:
        """Ask the MLS for the one record; apply it like a replicated change (to the replica
        and to every holder of its key), or report the listing missing from the MLS."""
        client = await self._client_or_failure(scope)
        if isinstance(client, str):
            return client
        key = target.lookup_key(client.key_field)
        try:
            found = await client.fetch_by_keys([key])
        except MlsAuthError:
            return await self._expired(scope)
        except MlsCredentialSuspended as exc:
            return await self._suspended(scope, exc.until)
        except MlsRequestError as exc:
            METRICS.error("mls_request")
            listing_error(
                scope,
                target.connection_id,
                SyncError(listing_id=target.id, mls_number=target.mls_number, error=str(exc)),
                kind="mls_request",
            )
            return f"MLS unreachable: {exc}"
        await self._remember_filter_style(scope.feed, client)
        record = found.get(key)
        mapper = _mapper(scope.feed)
        async with self.db.transaction() as session:
            if record is not None:
                applied = await fan_out(
                    session, self._applier, scope, [record], mapper, seen_at=utcnow()
                )
            else:
                applied = await self._applier.apply_in(
                    session, scope, judge([(target, None)], mapper)
                )
        self._applier.report(scope, applied)
        return None

    async def _drain(self, scope: RunScope, asked: Mapping[str, str | None]) -> None:
        """Deliver the unpublish jobs this run queued, and any still due for the listings of
        the connections that asked."""
        owners = dict(scope.changed)  # listing id -> its connection
        if asked:
            async with self.db.transaction() as session:
                for connection_id in asked:
                    for listing in await session.listings.of_connection(connection_id):
                        owners[listing.id] = connection_id
        if not owners:
            return
        drained = await self.unpublisher.drain(listing_ids=list(owners))
        METRICS.error("unpublish", len(drained.errors))
        for listing_id, count in drained.unpublished_by_listing.items():
            if listing_id in owners:
                scope.result(owners[listing_id]).unpublished_posts += count
        for listing_id, mls_number, message in drained.errors:
            if listing_id in owners:
                scope.result(owners[listing_id]).errors.append(
                    SyncError(listing_id=listing_id, mls_number=mls_number, error=message)
                )
        for connection_id, result in scope.results.items():
            for change in result.status_changes:
                if change.new_status is ListingStatus.SOLD:
                    count = drained.unpublished_by_listing.get(change.listing_id, 0)
                    scope.log.info(
                        f"Listing {change.mls_number} marked as sold, unpublished {count} posts",
                        connection_id=connection_id,
                        listing_id=change.listing_id,
                        mls_number=change.mls_number,
                    )

    async def _record(
        self,
        scope: RunScope,
        outcome: FeedOutcome,
        asked: Mapping[str, str | None],
        *,
        trigger: str,
        started: datetime,
        quiet: QuietCloser | None,
    ) -> None:
        """The feed's run row (totals over every member) and a row for each member that
        asked or had something happen (an idle cycle of 1,000 members writes one row)."""
        reported = [
            cid
            for cid in outcome.members
            if cid in asked or _eventful(outcome.results.get(cid)) or outcome.failure
        ]
        feed_outcome = outcome.whole()
        total = feed_outcome.result
        rows: dict[str, str] = {}
        connections: dict[str, MlsConnection] = {}
        if quiet is not None and not reported and outcome.failure is None:
            await quiet.submit(QuietRun(scope.feed.id, scope.run_id, started, feed_outcome))
        else:
            async with self.db.transaction() as session:
                if outcome.failure is None:
                    # The run's start: the next one is due a cadence after it (runs.is_due);
                    # a failed or abandoned run leaves it, so the next tick tries again.
                    await session.feeds.ran(scope.feed.id, started)
                parts = [outcome.part_of(cid) for cid in reported]
                await finish_row(session, scope.run_id, feed_outcome, parts)
                connections = {c.id: c for c in await session.connections.with_ids(reported)}
                for connection_id in reported:
                    if connection_id in connections:
                        rows[connection_id] = await self._member_row(
                            session, scope, connections[connection_id], outcome, asked, trigger
                        )
        scope.log.info(
            f"Status sync complete: {total.updated_listings} updated, "
            f"{total.unpublished_posts} posts unpublished, {total.restored_listings} restored",
            errors=len(total.errors),
            success=outcome.failure is None,
        )
        if self.run_monitor is None:
            return
        # The feed's run is measured once, with every member's listings; it alerts itself
        # only when the feed failed (expired, unreachable): once, not once per member.
        await self.run_monitor.run_finished(
            FinishedRun(
                run_id=scope.run_id,
                connection_id=scope.feed.id,
                connection_name=scope.feed.name or scope.feed.base_url,
                user_id=scope.feed.owner_user_id,
                trigger=trigger,
                scope="feed",
                success=outcome.failure is None,
                message=feed_outcome.message,
                started_at=started,
                finished_at=utcnow(),
                result=total,
            ),
            alert=outcome.failure is not None,
        )
        if outcome.failure is not None:
            return
        for connection_id, run_id in rows.items():
            if connection_id in connections:
                await self._monitor(
                    run_id,
                    connections[connection_id],
                    trigger,
                    "connection",
                    outcome.outcome_for(connection_id),
                    started,
                    observe=False,
                )

    @staticmethod
    async def _member_row(
        session: UnitOfWork,
        scope: RunScope,
        connection: MlsConnection,
        outcome: FeedOutcome,
        asked: Mapping[str, str | None],
        trigger: str,
    ) -> str:
        """A member's row of the feed's run: the one it queued, or a new one."""
        run = await deferred_runs.resume_or_start(
            session,
            asked.get(connection.id),
            trigger=trigger,
            scope="connection",
            scope_id=connection.id,
            user_id=connection.user_id,
        )
        run.feed_run_id = scope.run_id
        await finish_row(session, run.id, outcome.outcome_for(connection.id))
        return run.id

    async def _monitor(
        self,
        run_id: str,
        connection: MlsConnection,
        trigger: str,
        scope: str,
        outcome: Outcome,
        started: datetime,
        *,
        observe: bool = True,
    ) -> None:
        if self.run_monitor is None:
            return
        await self.run_monitor.run_finished(
            FinishedRun(
                run_id=run_id,
                connection_id=connection.id,
                connection_name=connection.name,
                user_id=connection.user_id,
                trigger=trigger,
                scope=scope,
                success=outcome.success,
                message=outcome.message,
                started_at=started,
                finished_at=utcnow(),
                result=outcome.result,
            ),
            observe=observe,
        )

    async def _expired(self, scope: RunScope) -> str:
        async with self.db.transaction() as session:
            await repo.mark_feed(
                session, scope.feed.id, ConnectionState.EXPIRED, MLS_CONNECTION_EXPIRED
            )
        scope.feed.state = ConnectionState.EXPIRED
        METRICS.error("mls_auth")
        scope.log.error("MLS refused the feed's credentials", error=MLS_CONNECTION_EXPIRED)
        return MLS_CONNECTION_EXPIRED

    async def rest_credential(self, feed: MlsFeed, until: datetime) -> None:
        """The vendor suspended the feed's credential (found by a run, or by a doctor's
        probe): every feed on it rests until `until` (MLS Grid issues one token per vendor,
        covering each MLS it serves: several feeds), which every worker and every restart
        reads from the feeds' rows; the alert fires once."""
        newly = await suspend_credential(self.db, self._clients, feed, until)
        feed.suspended_until = until
        METRICS.error("mls_suspended")
        if newly and self.run_monitor is not None:
            await self.run_monitor.platform_alert(
                credential_suspended_alert(feed.provider, feed_id=feed.id, until=until)
            )

    async def _suspended(self, scope: RunScope, until: datetime) -> str:
        await self.rest_credential(scope.feed, until)
        message = suspended_message(until)
        scope.log.error("MLS suspended the feed's credential", error=message)
        return message

    async def _remember_filter_style(self, feed: MlsFeed, client: ResoClient) -> None:
        """A server that refused `in` made the client fall back to `or` chains: keep that,
        so the next run does not pay the refusal again."""
        learned = client.filter_style
        if learned != (feed.filter_style or client.profile.filter_style):
            async with self.db.transaction() as session:
                await repo.save_filter_style(session, feed.id, learned)
            feed.filter_style = learned


def run_deadline_passed(deadline: timedelta) -> str:
    return (
        f"The MLS sync was stopped after {deadline.total_seconds():g} s (its deadline); "
        "what it had applied is kept and the next run goes on from there"
    )


def _mapper(feed: MlsFeed) -> StatusMapper:
    return StatusMapper(feed.status_overrides or None)


def _eventful(result: SyncResult | None) -> bool:
    return result is not None and bool(
        result.updated_listings or result.unpublished_posts or result.errors
    )
