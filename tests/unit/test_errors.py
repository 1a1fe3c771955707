"""The typed errors are the one vocabulary of failure: each edge maps the type, never the
text, to its answer (an HTTP status, an exit status, `{success: false, message}`)."""

from __future__ import annotations

import pytest
import typer

from mls_sync.api.errors import invalid_detail, status_of
from mls_sync.cli.support import fail_with
from mls_sync.domain.errors import (
    Conflict,
    InvalidInput,
    NeedsReauth,
    NotFound,
    ServiceError,
    Unavailable,
    Unsupported,
)
from mls_sync.store.errors import SqlOnlyError, TablesMissingError
from mls_sync.sync.guard import SYNC_IN_PROGRESS, SyncInProgressError
from mls_sync.sync.importer import FeedNotLoadedError, ListingExistsError, ListingRejectedError


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (NotFound("MLS connection not found"), 404),
        (Conflict("busy"), 409),
        (InvalidInput("baseUrl", "must be an http:// or https:// URL"), 422),
        (NeedsReauth("MLS connection expired. Please re-authenticate."), 502),
        (Unavailable("the MLS did not answer"), 502),
        (Unsupported("not on DynamoDB"), 501),
    ],
)
def test_each_kind_of_error_has_one_http_status(error: ServiceError, status: int) -> None:
    assert status_of(error) == status


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (SyncInProgressError(), 409),
        (ListingExistsError("This MLS connection already has a listing with this key"), 409),
        (ListingRejectedError("Listing not found in MLS"), 422),
        (FeedNotLoadedError(), 409),
        (SqlOnlyError("The dashboard page"), 501),
        (TablesMissingError("run mls-sync db upgrade"), 502),
    ],
)
def test_the_layers_errors_are_kinds_of_the_typed_ones(error: ServiceError, status: int) -> None:
    assert status_of(error) == status


def test_the_message_is_the_one_the_caller_is_shown() -> None:
    assert SyncInProgressError().message == SYNC_IN_PROGRESS
    assert ListingRejectedError("gone").field == "listingKey"


def test_an_invalid_field_is_named_where_it_sits_in_the_body() -> None:
    error = InvalidInput("clientId", "an oauth2 connection needs clientId")
    assert invalid_detail(error) == [
        {"loc": ["body", "clientId"], "msg": error.message, "type": "value_error"}
    ]
    nested = error.nested_in("credentials")
    assert invalid_detail(nested)[0]["loc"] == ["body", "credentials", "clientId"]
    assert (nested.field, nested.message) == (error.field, error.message)


@pytest.mark.parametrize(
    ("error", "code", "line"),
    [
        (InvalidInput("email", "'x' is not an email address"), 2, "email: 'x' is not an email"),
        (NotFound("No user 'nobody'"), 1, "No user 'nobody'"),
        (Conflict("A sync of this MLS connection is already in progress"), 1, "already in"),
    ],
)
def test_the_command_line_says_the_message_and_exits_2_only_for_bad_input(
    error: ServiceError, code: int, line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(typer.Exit) as exited:
        fail_with(error)
    assert exited.value.exit_code == code
    assert line in capsys.readouterr().err
