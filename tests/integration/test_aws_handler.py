"""The Lambda handler: an EventBridge schedule runs the cron sync against the real sandbox
servers; function URL and API Gateway requests get the cron route's answers (bearer check,
bodies, statuses); other events are refused with a clear error."""

from __future__ import annotations

import asyncio
import importlib
import json
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import SecretStr

from api_support import CRON_SECRET, api_client, bearer
from conftest import ALL_BACKENDS
from factories import seed_connection, seed_posts
from mls_sync.aws import LambdaHandler
from mls_sync.aws.events import HttpRequest, ScheduledEvent, UnsupportedEventError, parse_event
from mls_sync.config import Settings
from mls_sync.domain.status import ListingStatus as S
from mls_sync.runtime import Runtime
from mls_sync.sandbox.platforms import PlatformSandbox
from mls_sync.sandbox.reso import ResoSandbox
from mls_sync.store import repositories as repo
from mls_sync.store.crypto import TokenCipher

CRON = "/api/cron/sync-mls-status"
CONTEXT = SimpleNamespace(aws_request_id="3f1c2a7e-0000-4000-8000-000000000001")

# Shapes as AWS documents them (lambda/latest/dg/with-scheduled-events.html; apigateway
# http-api-develop-integrations-lambda.html; lambda/latest/dg/urls-invocation.html).
SCHEDULED = {
    "version": "0",
    "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": "123456789012",
    "time": "2025-05-01T12:15:00Z",
    "region": "us-east-1",
    "resources": ["arn:aws:events:us-east-1:123456789012:rule/mls-sync-Schedule"],
    "detail": {},
}


def rest_v1(method: str, path: str, headers: dict[str, str] | None) -> dict[str, Any]:
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in (headers or {}).items()} or None,
        "queryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "1234567890",
            "httpMethod": method,
            "path": f"/prod{path}",
            "resourcePath": path,
            "stage": "prod",
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
        },
        "body": None,
        "isBase64Encoded": False,
    }


def http_v2(
    method: str,
    path: str,
    headers: dict[str, str],
    *,
    domain: str = "r3pmxmplak.execute-api.us-east-1.amazonaws.com",
    stage: str = "$default",
) -> dict[str, Any]:
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {k.lower(): v for k, v in headers.items()}
        | {"host": domain, "x-forwarded-proto": "https"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": domain.split(".")[0],
            "domainName": domain,
            "domainPrefix": domain.split(".")[0],
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "curl/8.5.0",
            },
            "requestId": "JKJaXmPLvHcESHA=",
            "routeKey": "$default",
            "stage": stage,
            "time": "01/May/2025:12:15:00 +0000",
            "timeEpoch": 1746101700000,
        },
        "isBase64Encoded": False,
    }


def function_url(method: str, path: str, headers: dict[str, str]) -> dict[str, Any]:
    return http_v2(method, path, headers, domain="abcdefg123.lambda-url.us-east-1.on.aws")


FRONT_DOORS = {"function-url": function_url, "http-api": http_v2, "rest-api": rest_v1}


def lambda_settings(runtime: Runtime, database_url: str, **changes: Any) -> Settings:
    """The test's settings as the function would read them: its own database URL, a secret."""
    values = {**runtime.settings.model_dump(), "database_url": database_url}
    values["cron_secret"] = SecretStr(CRON_SECRET)
    return Settings.model_validate({**values, **changes})


async def invoke(handler: LambdaHandler, event: Any) -> dict[str, Any]:
    # As on Lambda: a plain call on a thread without a running event loop.
    return await asyncio.to_thread(handler, event, CONTEXT)


async def runs_with_trigger(runtime: Runtime, trigger: str) -> list[str]:
    """The scopes of the run rows with this trigger, sorted: each invocation's feed run is one
    "feed" row, plus a "connection" row per member that had changes."""
    async with runtime.db.transaction() as session:
        runs = await session.runs.newest(user_id=None, limit=10_000)
    return sorted(r.scope for r in runs if r.trigger == trigger)


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


# the schedule (on every storage backend: the template's function may run on DynamoDB)


@pytest.mark.parametrize("database_url", ALL_BACKENDS, indirect=True)
async def test_a_schedule_syncs_every_active_feed_and_returns_and_logs_the_response(
    runtime: Runtime,
    database_url: str,
    reso: ResoSandbox,
    reso_url: str,
    platforms: PlatformSandbox,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "mls-sync-SyncFunction")
    seeded = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE, "K2": S.PENDING})
    await seed_posts(runtime, platforms, seeded.listings["K1"], ("facebook",))
    reso.set_status("K1", "Closed")
    reso.set_status("K2", "Active")
    handler = LambdaHandler(lambda_settings(runtime, database_url))

    response = await invoke(handler, SCHEDULED)

    assert set(response) == {"success", "message", "data"}
    assert response["success"] is True
    data = response["data"]
    assert (data["totalListings"], data["updatedListings"]) == (2, 2)
    assert (data["unpublishedPosts"], data["restoredListings"]) == (1, 1)
    assert [c["connectionId"] for c in data["connections"]] == [seeded.connection_id]
    assert {(c["mlsNumber"], c["newStatus"]) for c in data["statusChanges"]} == {
        ("MLS-K1", "sold"),
        ("MLS-K2", "active"),
    }
    async with runtime.db.transaction() as session:
        listing = await repo.get_listing(session, seeded.listings["K1"].id, user_id=None)
        assert listing is not None and listing.status == S.SOLD
    # The feed's run, and the row of its member whose listings changed.
    assert await runs_with_trigger(runtime, "eventbridge") == ["connection", "feed"]
    assert platforms.has_post("facebook", "facebook-K1") is False
    out, err = capsys.readouterr()
    logged = [line for line in json_lines(err) if line.get("event") == "MLS status sync response"]
    assert [line["response"] for line in logged] == [response]
    assert logged[0]["aws_request_id"] == CONTEXT.aws_request_id
    # On Lambda the run's EMF line goes to stdout, figures as in the response.
    (emf,) = [line for line in json_lines(out) if "_aws" in line]
    assert (emf["ListingsChecked"], emf["PostsUnpublished"], emf["trigger"]) == (
        2,
        1,
        "eventbridge",
    )


@pytest.mark.parametrize("database_url", ALL_BACKENDS, indirect=True)
async def test_a_warm_container_runs_one_invocation_after_another(
    runtime: Runtime, database_url: str, reso: ResoSandbox, reso_url: str
) -> None:
    # Each invocation has its own event loop: nothing from the first may leak into the second.
    await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE})
    handler = LambdaHandler(lambda_settings(runtime, database_url))

    first = await invoke(handler, SCHEDULED)
    reso.set_status("K1", "Pending")
    second = await invoke(handler, SCHEDULED)

    assert (first["data"]["updatedListings"], second["data"]["updatedListings"]) == (0, 1)
    # Two feed runs; only the second changed the member's listing, so only it wrote its row.
    assert await runs_with_trigger(runtime, "eventbridge") == ["connection", "feed", "feed"]


# the cron route over HTTP


@pytest.mark.parametrize(
    ("door", "method"), [("function-url", "POST"), ("http-api", "GET"), ("rest-api", "POST")]
)
async def test_an_authorised_cron_request_answers_the_sync_response_as_a_proxy_response(
    runtime: Runtime,
    database_url: str,
    reso: ResoSandbox,
    reso_url: str,
    door: str,
    method: str,
) -> None:
    await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE})
    reso.set_status("K1", "Closed")
    handler = LambdaHandler(lambda_settings(runtime, database_url))
    event = FRONT_DOORS[door](method, CRON, {"Authorization": f"Bearer {CRON_SECRET}"})

    response = await invoke(handler, event)

    assert response["statusCode"] == 200
    assert response["headers"]["content-type"] == "application/json"
    assert response["isBase64Encoded"] is False
    body = json.loads(response["body"])
    assert (body["success"], body["data"]["updatedListings"]) == (True, 1)
    assert await runs_with_trigger(runtime, "cron") == ["connection", "feed"]


async def test_an_http_api_stage_in_the_path_is_not_part_of_the_route(
    runtime: Runtime, database_url: str
) -> None:
    handler = LambdaHandler(lambda_settings(runtime, database_url))
    event = http_v2("POST", f"/prod{CRON}", bearer(CRON_SECRET), stage="prod")

    response = await invoke(handler, event)

    assert response["statusCode"] == 200


@pytest.mark.parametrize(
    ("headers", "door"),
    [
        ({}, "function-url"),
        (bearer("wrong-secret"), "http-api"),
        (bearer(CRON_SECRET + "x"), "rest-api"),
        ({"Authorization": f"Basic {CRON_SECRET}"}, "function-url"),
        ({"Authorization": CRON_SECRET}, "rest-api"),
    ],
    ids=["none", "wrong", "longer", "not-bearer", "no-scheme"],
)
async def test_a_cron_request_without_the_secret_is_the_routes_401_and_syncs_nothing(
    runtime: Runtime,
    database_url: str,
    reso: ResoSandbox,
    reso_url: str,
    headers: dict[str, str],
    door: str,
) -> None:
    await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE})
    handler = LambdaHandler(lambda_settings(runtime, database_url))

    response = await invoke(handler, FRONT_DOORS[door]("POST", CRON, headers))

    async with api_client(runtime) as api:
        fastapi = await api.post(CRON, headers=headers)
    assert (response["statusCode"], fastapi.status_code) == (401, 401)
    assert (
        json.loads(response["body"]) == fastapi.json() == {"detail": "Missing or wrong cron secret"}
    )
    assert response["headers"]["www-authenticate"] == fastapi.headers["www-authenticate"]
    assert reso.request_count == 0
    assert await runs_with_trigger(runtime, "cron") == []


async def test_without_a_cron_secret_the_route_is_closed_like_the_api(
    runtime: Runtime, database_url: str
) -> None:
    handler = LambdaHandler(lambda_settings(runtime, database_url, cron_secret=None))

    response = await invoke(handler, function_url("POST", CRON, bearer("")))

    async with api_client(runtime, cron_secret=None) as api:
        fastapi = await api.post(CRON, headers=bearer(""))
    assert (response["statusCode"], fastapi.status_code) == (503, 503)
    assert json.loads(response["body"]) == fastapi.json()


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("POST", "/api/sync", 404), ("POST", "/", 404), ("DELETE", CRON, 405), ("PUT", CRON, 405)],
)
async def test_other_routes_and_methods_are_refused_before_the_secret_is_looked_at(
    runtime: Runtime, database_url: str, method: str, path: str, status: int
) -> None:
    handler = LambdaHandler(lambda_settings(runtime, database_url))

    response = await invoke(handler, function_url(method, path, bearer(CRON_SECRET)))

    assert response["statusCode"] == status
    async with api_client(runtime) as api:
        fastapi = await api.request(method, CRON if status == 405 else path)
    if status == 405:
        assert json.loads(response["body"]) == fastapi.json()
        assert response["headers"]["allow"] == "GET, POST"
    assert await runs_with_trigger(runtime, "cron") == []


# events it does not handle (pure)


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ([], "expected a JSON object, got list"),
        ("sync", "expected a JSON object, got str"),
        ({}, "keys: none"),
        ({"Records": [{"eventSource": "aws:sqs"}]}, "keys: Records"),
        ({"detail-type": "Object Created", "source": "aws.s3"}, "'Object Created' from 'aws.s3'"),
        ({"detail-type": "Scheduled Event", "source": "my.app"}, "from 'my.app'"),
        ({"version": "2.0", "rawPath": "/x"}, "requestContext is missing"),
        ({"version": "2.0", "rawPath": "/x", "requestContext": {"http": {}}}, "http.method"),
        ({"httpMethod": 5, "path": CRON}, "httpMethod and path must be strings"),
    ],
)
def test_an_unsupported_event_is_an_error_that_says_what_came(event: Any, reason: str) -> None:
    with pytest.raises(UnsupportedEventError, match=r"Unsupported|Malformed") as raised:
        parse_event(event)

    assert reason in str(raised.value)


def test_the_handler_raises_for_an_unsupported_event_without_touching_the_database(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'none.db'}")

    with pytest.raises(UnsupportedEventError):
        LambdaHandler(settings)({"Records": []}, CONTEXT)

    assert not (tmp_path / "none.db").exists()


def test_events_are_told_apart_by_their_shape() -> None:
    scheduled = parse_event(SCHEDULED)
    assert scheduled == ScheduledEvent(
        "aws.events", "2025-05-01T12:15:00Z", SCHEDULED["resources"][0]
    )
    sources = {
        door: parse_event(make("post", CRON, {"AUTHORIZATION": "Bearer s"}))
        for door, make in FRONT_DOORS.items()
    }
    for request in sources.values():
        assert isinstance(request, HttpRequest)
        assert (request.method, request.path, request.header("Authorization")) == (
            "POST",
            CRON,
            "Bearer s",
        )
    assert [r.source for r in sources.values()] == [  # type: ignore[union-attr]
        "function-url",
        "api-gateway-v2",
        "api-gateway-v1",
    ]
    rest_without_headers = parse_event(rest_v1("POST", CRON, None))
    assert isinstance(rest_without_headers, HttpRequest) and rest_without_headers.headers == {}


# the exported handler


def test_the_lambda_handler_string_resolves_to_the_callable() -> None:
    # Lambda resolves "mls_sync.aws.handler" as attribute `handler` of module `mls_sync.aws`,
    # also after something imported the submodule of the same name.
    importlib.import_module("mls_sync.aws.handler")
    target = importlib.import_module("mls_sync.aws").handler

    assert isinstance(target, LambdaHandler)


def test_the_handler_reads_its_settings_from_the_environment(
    tmp_path: Path,
    sqlite_template: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    database = tmp_path / "lambda.db"
    shutil.copy(sqlite_template, database)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{database}")
    monkeypatch.setenv("CRON_SECRET", "from-secrets-manager-0123456789abcdef")
    monkeypatch.setenv("MLS_SYNC_TOKEN_KEYS", TokenCipher.generate_key())
    monkeypatch.setenv("MLS_SYNC_ENVIRONMENT", "production")
    monkeypatch.setenv("MLS_SYNC_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MLS_SYNC_EMF_ENABLED", "false")
    handler = LambdaHandler()

    refused = handler(function_url("POST", CRON, bearer(CRON_SECRET)), CONTEXT)
    answered = handler(
        function_url("POST", CRON, bearer("from-secrets-manager-0123456789abcdef")), CONTEXT
    )

    assert (refused["statusCode"], answered["statusCode"]) == (401, 200)
    assert json.loads(answered["body"])["message"].startswith("Synced 0 of 0 MLS connections")
    assert '"_aws"' not in capsys.readouterr().out


@pytest.mark.dynamodb
def test_a_schedule_runs_on_dynamodb_named_by_database_url_in_the_environment(
    dynamodb_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As deployed: DATABASE_URL=dynamodb://PREFIX?region=... and tables `db upgrade` made."""
    monkeypatch.setenv("DATABASE_URL", dynamodb_url)
    monkeypatch.setenv("MLS_SYNC_TOKEN_KEYS", TokenCipher.generate_key())
    monkeypatch.setenv("MLS_SYNC_ENVIRONMENT", "production")
    monkeypatch.setenv("MLS_SYNC_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MLS_SYNC_EMF_ENABLED", "false")

    response = LambdaHandler()(SCHEDULED, CONTEXT)

    assert response["success"] is True
    assert response["message"].startswith("Synced 0 of 0 MLS connections")
    assert not (tmp_path / "mls-sync.db").exists()  # no SQLite file on the side
