"""The full check: ask the MLS about every listing we hold, a batch at a time.

For each batch of listings the MLS is asked once (the client follows server paging); batches of
one connection run concurrently within the credential's request budget, and their answers are
applied one at a time as they arrive, each status change in its own transaction together with
its history row and the unpublish jobs the policy calls for. A listing's failure is recorded and
the check goes on; only an expired credential (MlsAuthError, raised to the engine) stops it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from mls_sync.domain.reso import LISTING_NOT_FOUND, StatusMapper, StatusMappingError
from mls_sync.domain.results import SyncError
from mls_sync.mls.client import MlsClient, MlsRecord
from mls_sync.mls.errors import MlsAuthError, MlsRequestError
from mls_sync.observability.metrics import METRICS
from mls_sync.sync.apply import Applier, RunScope, Target, listing_error
from mls_sync.sync.outcome import Outcome, ProgressCallback


@dataclass
class _Answer:
    """The MLS's answer for one batch: its records, or the error that cost the batch."""

    batch: list[Target]
    records: dict[str, MlsRecord]
    error: MlsRequestError | None = None


async def check_listings(
    applier: Applier,
    scope: RunScope,
    client: MlsClient,
    targets: Sequence[Target],
    *,
    concurrency: int,
    progress: ProgressCallback | None,
) -> tuple[Outcome | None, bool]:
    """Ask the MLS about every target and apply the answers; returns an Outcome only when
    every request failed, and whether every request got an answer."""
    if not targets:
        return None, True
    batches = [
        list(targets[i : i + client.batch_size]) for i in range(0, len(targets), client.batch_size)
    ]
    gate = asyncio.Semaphore(concurrency)

    async def fetch(batch: list[Target]) -> _Answer:
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
                _batch_failed(answer, scope)
            else:
                await _apply_batch(applier, scope, answer)
            if progress is not None:
                progress(len(answer.batch), len(targets))
    except MlsAuthError:
        # The credential is refused: the other batches would only be refused too.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    if failed_requests == len(batches):
        message = f"MLS unreachable: {scope.result.errors[0].error}"
        return Outcome(False, message, scope.result), False
    return None, failed_requests == 0


def _batch_failed(answer: _Answer, scope: RunScope) -> None:
    message = str(answer.error)
    scope.log.warning("MLS request failed", error=message, listings=len(answer.batch))
    for target in answer.batch:  # one error (and log event) per listing it cost
        listing_error(
            scope,
            SyncError(listing_id=target.id, mls_number=target.mls_number, error=message),
            kind="mls_request",
        )


async def _apply_batch(applier: Applier, scope: RunScope, answer: _Answer) -> None:
    mapper = StatusMapper(scope.connection.status_overrides or None)
    key_field = scope.connection.key_field
    for target in answer.batch:
        record = answer.records.get(target.lookup_key(key_field))
        try:
            if record is None or record.gone:  # MLS Grid: MlgCanView false
                raise StatusMappingError(LISTING_NOT_FOUND)
            new_status = mapper.map(record.standard_status)
            await applier.apply(scope, target, new_status, record)
        except StatusMappingError as exc:
            listing_error(
                scope,
                SyncError(listing_id=target.id, mls_number=target.mls_number, error=str(exc)),
            )
        except Exception as exc:  # one listing's failure never stops the others
            scope.log.exception(
                "listing sync failed", listing_id=target.id, mls_number=target.mls_number
            )
            METRICS.error("internal")
            scope.result.errors.append(
                SyncError(
                    listing_id=target.id,
                    mls_number=target.mls_number,
                    error=f"Internal error: {type(exc).__name__}",
                )
            )
