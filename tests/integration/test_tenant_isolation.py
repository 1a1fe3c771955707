"""Many tenants, one service: what a hostile second user must not reach through the MLS side.

Each test is one finding of the security review (issue 17) and failed on the code before its
fix: B names A's OAuth2 client id and token endpoint with a secret of B's own, and a base URL
of B's own server (or A's)."""

from __future__ import annotations

import asyncio
import io
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api_support import api_client, bearer, new_user
from factories import seed_user
from mls_sync.config import Settings
from mls_sync.domain.errors import InvalidInput
from mls_sync.mls.auth import OAuth2ClientCredentials, StaticBearer, TokenCache
from mls_sync.mls.client import ResoClient
from mls_sync.mls.errors import (
    MLS_CONNECTION_EXPIRED,
    NETWORK_TIMEOUT,
    MlsBudgetExhausted,
    MlsPayloadError,
    MlsRequestError,
)
from mls_sync.mls.limits import RateBudgets, RequestBudget
from mls_sync.mls.profiles import PROFILES
from mls_sync.mls.transport import MlsTransport
from mls_sync.observability.logs import configure_logging
from mls_sync.observability.redact import REDACTED, SECRETS
from mls_sync.runtime import Runtime, open_runtime
from mls_sync.sandbox.reso import ResoSandbox
from mls_sync.sandbox.reso_vendors import Fault
from mls_sync.sandbox.server import BackgroundServer
from mls_sync.services.feeds import FeedSettings, MlsCredentials, add_feed
from mls_sync.store import repositories as repo
from mls_sync.store.database import Database
from mls_sync.sync.engine import run_deadline_passed

A_CLIENT, A_SECRET = "agency-a", "a-secret-only-a-knows"


@pytest.fixture
def b_server() -> Iterator[tuple[ResoSandbox, str]]:
    """B's own MLS: it records every request it receives, with the bearer token it carried."""
    mls = ResoSandbox(tokens=["b-token"])
    with BackgroundServer(mls.app) as server:
        yield mls, server.url


async def _oauth_connection(
    runtime: Runtime, mls: ResoSandbox, base_url: str, token_url: str, secret: str
) -> str:
    """A new user's connection (a private feed) holding K1, with A's client id."""
    mls.add_listing("K1", "MLS-K1", "Active")
    user_id = await seed_user(runtime, f"{uuid.uuid4().hex[:12]}@example.com")
    async with runtime.db.transaction() as session:
        connection = await repo.create_mls_connection(
            session,
            runtime.cipher,
            user_id=user_id,
            base_url=base_url,
            token=None,
            auth_kind="oauth2",
            credentials={"client_id": A_CLIENT, "client_secret": secret},
            profile_overrides={"token_url": token_url},
        )
        await repo.add_listing(session, connection=connection, listing_key="K1", mls_number="M1")
    return connection.id


async def _bearer_connection(runtime: Runtime, mls: ResoSandbox, base_url: str) -> str:
    mls.add_listing("K1", "MLS-K1", "Active")
    user_id = await seed_user(runtime, f"{uuid.uuid4().hex[:12]}@example.com")
    async with runtime.db.transaction() as session:
        connection = await repo.create_mls_connection(
            session, runtime.cipher, user_id=user_id, base_url=base_url, token="mls-token"
        )
        await repo.add_listing(session, connection=connection, listing_key="K1", mls_number="M1")
    return connection.id


async def test_b_naming_as_client_and_token_endpoint_never_gets_as_token(
    runtime: Runtime, reso: ResoSandbox, reso_url: str, b_server: tuple[ResoSandbox, str]
) -> None:
    """A's token is cached after A's sync. B's connections (B's server, then A's MLS) make
    their own token request with B's secret, which A's token endpoint refuses: B's syncs end
    expired, B's server never sees A's token, and A's MLS sees no request from B."""
    b_mls, b_url = b_server
    reso.oauth.add_client(A_CLIENT, A_SECRET)
    token_url = f"{reso_url}/token"
    alice = await _oauth_connection(runtime, reso, reso_url, token_url, A_SECRET)
    assert (await runtime.engine.sync_connection(alice)).success
    a_tokens = {request.token for request in reso.requests}
    assert reso.oauth.issued == 1 and len(a_tokens) == 1
    seen_by_a = len(reso.requests)

    to_b = await _oauth_connection(runtime, b_mls, b_url, token_url, "any-guess")
    at_a = await _oauth_connection(runtime, reso, reso_url, token_url, "any-guess")
    outcomes = [await runtime.engine.sync_connection(c) for c in (to_b, at_a)]

    assert [(o.success, o.message) for o in outcomes] == [(False, MLS_CONNECTION_EXPIRED)] * 2
    assert b_mls.requests == []  # no token to send: B's token request was refused
    assert len(reso.requests) == seen_by_a  # B read nothing of A's MLS
    assert reso.oauth.issued == 1  # only A's own request was ever granted
    assert (await runtime.engine.sync_connection(alice)).success  # A is untouched


async def test_credentials_share_a_token_and_a_budget_only_when_every_part_is_the_same() -> None:
    """The identity behind token caches, budgets and locks is a digest over the MLS host, the
    token endpoint, the client id and the secret: the public parts alone name nobody's."""
    cache, budgets = TokenCache(), RateBudgets(2.0)
    profile = PROFILES["generic"]

    async with httpx.AsyncClient() as http:

        def oauth(base_url: str, secret: str, client_id: str = A_CLIENT) -> str:
            return OAuth2ClientCredentials(
                http,
                base_url=base_url,
                token_url="https://auth.mls.test/token",
                client_id=client_id,
                client_secret=secret,
                scope=None,
                cache=cache,
            ).credential_id

        same = oauth("https://api.mls.test/v2", A_SECRET)
        assert oauth("https://API.mls.test/other/path", A_SECRET) == same  # one host
        others = [
            oauth("https://api.mls.test/v2", "another secret"),
            oauth("https://b.example/v2", A_SECRET),
            oauth("https://api.mls.test/v2", A_SECRET, client_id="agency-b"),
        ]
    assert len({same, *others}) == 4
    assert all(A_SECRET not in identity for identity in (same, *others))

    def budget(credential_id: str) -> object:
        return budgets.for_connection(profile, "https://api.mls.test/v2", credential_id)

    assert budget(same) is budget(same)
    assert all(budget(other) is not budget(same) for other in others)
    bearer = StaticBearer("raw-token", base_url="https://api.mls.test")
    assert "raw-token" not in bearer.credential_id
    assert StaticBearer("raw-token", base_url="https://b.example").credential_id != (
        bearer.credential_id
    )


# 2. profile overrides are a short, typed list: rates and budgets are the operator's


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"requests_per_second": 1e-9}, "requests_per_second"),  # stalled every scheduled sync
        ({"requests_per_hour": 10**9}, "requests_per_hour"),
        ({"max_or_operators": -1}, "max_or_operators"),
        ({"batch_size": 10_000}, "batch_size"),
        ({"page_size": "abc"}, "page_size"),
        ({"page_size": 0}, "page_size"),
        ({"page_size": True}, "page_size"),
        ({"page_size": 2.5}, "page_size"),
        ({"page_size": 6000}, "page_size"),  # over MLS Grid's $top cap of 5,000
        ({"originating_system_name": "mred' or 1 eq 1"}, "originating_system_name"),
        ({"token_url": "file:///etc/passwd"}, "token_url"),
        ({"no_such_field": 1}, "no_such_field"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
async def test_hostile_profile_overrides_are_422_naming_the_field_and_change_nothing(
    runtime: Runtime, overrides: dict[str, object], field: str
) -> None:
    _, key = await new_user(runtime, "b@example.com")
    body = {
        "baseUrl": "https://api.mlsgrid.test/v2",
        "provider": "mlsgrid",
        "token": "b-token",
        "profileOverrides": {"originating_system_name": "mred", **overrides},
    }
    async with api_client(runtime) as api:
        created = await api.post("/api/mls-connections", json=body, headers=bearer(key))
        listed = await api.get("/api/mls-connections", headers=bearer(key))

    assert created.status_code == 422, created.text
    [error] = created.json()["detail"]
    assert error["loc"] == ["body", "profileOverrides", field]
    assert listed.json() == []


async def test_a_not_a_number_rate_is_refused_even_where_json_parsers_accept_it(
    runtime: Runtime,
) -> None:
    """Python's JSON parser reads a bare NaN; the override check does not take it."""
    _, key = await new_user(runtime, "b@example.com")
    body = (
        '{"baseUrl": "https://mls.test", "token": "t-0123456789",'
        ' "profileOverrides": {"page_size": NaN}}'
    )
    async with api_client(runtime) as api:
        created = await api.post(
            "/api/mls-connections",
            content=body,
            headers={**bearer(key), "Content-Type": "application/json"},
        )
    assert created.status_code == 422, created.text


async def test_a_member_may_describe_its_mls_but_only_the_operator_sets_rates(
    runtime: Runtime,
) -> None:
    """A private feed's owner sets what its MLS is (its system name, page size); the rate is
    refused as the operator's; the operator's shared feed takes it, within its bounds."""
    _, key = await new_user(runtime, "b@example.com")
    mine = {
        "baseUrl": "https://api.mlsgrid.test/v2",
        "provider": "mlsgrid",
        "token": "b-token",
        "profileOverrides": {"originating_system_name": "mred", "page_size": 1000},
    }
    async with api_client(runtime) as api:
        made = await api.post("/api/mls-connections", json=mine, headers=bearer(key))
        rate = {**mine, "profileOverrides": {"requests_per_second": 1.0}}
        refused = await api.post("/api/mls-connections", json=rate, headers=bearer(key))
    assert made.status_code == 201, made.text
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["msg"] == "is set by the operator, not per connection"

    async with runtime.db.transaction() as session:
        settings = FeedSettings(
            base_url="https://api.mlsgrid.test/v2",
            credentials=MlsCredentials(auth_kind="bearer", token="operator-token"),
            provider="mlsgrid",
            profile_overrides={"originating_system_name": "mred", "requests_per_second": 1.0},
        )
        shared = await add_feed(session, runtime.cipher, settings, owner_user_id=None)
        assert shared.profile_overrides["requests_per_second"] == 1.0
        with pytest.raises(InvalidInput) as refused_rate:
            await add_feed(
                session,
                runtime.cipher,
                FeedSettings(
                    base_url="https://mls.test",
                    credentials=MlsCredentials(auth_kind="bearer", token="t"),
                    profile_overrides={"requests_per_second": 1e-9},
                ),
                owner_user_id=None,
            )
    assert (refused_rate.value.within, refused_rate.value.field) == (
        ("profileOverrides",),
        "requests_per_second",
    )


async def test_a_slow_mls_cannot_hold_a_run_past_its_deadline(
    settings: Settings, db: Database, reso: ResoSandbox, reso_url: str
) -> None:
    """Each answer takes longer than the whole run may: the run stops at its deadline,
    fails with a message that says so, its row is finished and its lease is free again."""
    quick = settings.model_copy(update={"connection_run_seconds": 1.0, "mls_timeout_seconds": 5.0})
    async with open_runtime(quick, db=db) as runtime:
        reso.latency = 3.0
        connection_id = await _bearer_connection(runtime, reso, reso_url)
        started = time.monotonic()

        outcome = await runtime.engine.sync_connection(connection_id)

        assert time.monotonic() - started < 2.5
        assert not outcome.success
        assert outcome.message == run_deadline_passed(timedelta(seconds=1))
        async with runtime.db.transaction() as session:
            runs = await session.runs.newest(user_id=None)
        assert runs and all(run.state == "finished" and not run.success for run in runs)
        assert runtime.engine.guard.held() == frozenset()


async def test_an_mls_that_drips_its_answer_times_out_as_a_whole(reso_url: str) -> None:
    """httpx's timeout bounds each read; a server sending a byte every 0.2 s never trips it.
    The whole request has the same deadline."""

    async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
        writer.write(b"Content-Length: 100000\r\n\r\n")
        try:
            for _ in range(100_000):
                writer.write(b" ")
                await writer.drain()
                await asyncio.sleep(0.2)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(drip, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(timeout=1.0) as http:
            transport = MlsTransport(http, StaticBearer("t"), profile=PROFILES["generic"])
            started = time.monotonic()
            with pytest.raises(MlsRequestError) as failed:
                await transport.get_json(f"http://127.0.0.1:{port}/Property", params={})
        assert time.monotonic() - started < 3.0
        assert str(failed.value) == NETWORK_TIMEOUT
    finally:
        server.close()


async def test_the_spacing_queue_of_a_budget_is_capped_too() -> None:
    """Behind other requests (or at the slowest rate allowed), a request waits at most the
    budget's max wait plus one interval, then fails as the budget's: it never hangs."""
    budget = RequestBudget(per_second=5, max_wait=0.1)  # one request every 0.2 s
    await budget.acquire()
    started = time.monotonic()
    # Queued behind each other: 0.2, 0.4, ... 1.6 s; the cap is 0.1 + 2 x 0.2 + 0.1 s.
    waited = await asyncio.gather(*(budget.acquire() for _ in range(8)), return_exceptions=True)
    assert time.monotonic() - started < 1.2
    refused = [w for w in waited if isinstance(w, MlsBudgetExhausted)]
    assert 3 <= len(refused) < 8 and waited[0] is None


# 3. no secret reaches a log or an answer


@pytest.fixture
def log_text() -> Iterator[io.StringIO]:
    """Every log line, rendered as in production (JSON), into one text to search."""
    lines = io.StringIO()
    configure_logging(level="DEBUG", fmt="json", file=lines)
    try:
        yield lines
    finally:
        structlog.reset_defaults()


def _hostile_token_endpoint() -> Starlette:
    """Grants a token whose lifetime has 400 digits (float() of it overflowed)."""

    async def token(_request: Request) -> Response:
        body = '{"access_token": "tok-HOSTILE-0123456789", "expires_in": ' + "9" * 400 + "}"
        return Response(body, media_type="application/json")

    return Starlette(routes=[Route("/token", token, methods=["POST"])])


async def test_hostile_answers_are_clear_errors_leaving_no_secret_in_the_logs(
    runtime: Runtime, reso: ResoSandbox, reso_url: str, log_text: io.StringIO
) -> None:
    """A token answer that overflows, and an MLS announcing an infinite quota, crashed the
    parsing: the traceback's locals (in the error log) held the client secret and the bearer
    token, the API answered 500 and the run row stayed `running`. Now: a clear per-connection
    error, a finished row, and neither secret anywhere in the log."""
    secret = "client-SECRET-5f0c2e9a"
    user_id, key = await new_user(runtime, "b@example.com")
    with BackgroundServer(_hostile_token_endpoint()) as token_server:
        async with runtime.db.transaction() as session:
            oauth = await repo.create_mls_connection(
                session,
                runtime.cipher,
                user_id=user_id,
                base_url=reso_url,
                token=None,
                auth_kind="oauth2",
                credentials={"client_id": "hostile-client", "client_secret": secret},
                profile_overrides={"token_url": f"{token_server.url}/token"},
            )
            bearer_connection = await repo.create_mls_connection(
                session, runtime.cipher, user_id=user_id, base_url=reso_url, token="mls-token"
            )
        reso.fail_next.append(
            Fault(status=200, body={"value": []}, headers={"Hour-Quota-Limit": "inf"})
        )
        async with api_client(runtime) as api:
            answers = [
                await api.post(f"/api/mls-connections/{c.id}/sync", headers=bearer(key))
                for c in (bearer_connection, oauth)
            ]

    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].json()["success"] is True  # the infinite quota is ignored
    assert answers[1].json()["success"] is False
    assert "Malformed MLS token response" in answers[1].json()["message"]
    async with runtime.db.transaction() as session:
        runs = await session.runs.newest(user_id=None)
    assert runs and {run.state for run in runs} == {"finished"}
    text = log_text.getvalue()
    assert text  # the runs were logged
    for leaked in (secret, "mls-token", "tok-HOSTILE-0123456789"):
        assert leaked not in text
        assert all(leaked not in a.text for a in answers)


def test_a_known_secret_is_redacted_wherever_it_appears_in_an_event(
    log_text: io.StringIO,
) -> None:
    """In the message, a field, a nested field and a rendered exception alike."""
    SECRETS.add("sk-live-0123456789abcdef")
    log = structlog.get_logger("test")
    try:
        raise RuntimeError("the MLS said: bad token sk-live-0123456789abcdef")
    except RuntimeError:
        log.exception(
            "sending sk-live-0123456789abcdef",
            headers={"Authorization": "Bearer sk-live-0123456789abcdef"},
            tokens=["x", "sk-live-0123456789abcdef"],
        )
    text = log_text.getvalue()
    assert "sk-live-0123456789abcdef" not in text
    assert text.count(REDACTED) >= 4
    assert '"locals"' not in text  # tracebacks never carry frame locals


# 4. no reach into the private network, no token in clear


async def test_a_next_link_that_changes_the_scheme_is_refused_before_anything_is_sent(
    reso: ResoSandbox, reso_url: str
) -> None:
    """A page's @odata.nextLink on the MLS's own host but another scheme (https to http would
    send the bearer token in clear) stops the paging: no request follows it."""
    other_scheme = reso_url.replace("http://", "https://", 1)
    reso.fail_next.append(
        Fault(
            status=200,
            body={"value": [], "@odata.nextLink": f"{other_scheme}/Property?$skip=200"},
        )
    )
    async with httpx.AsyncClient(timeout=2.0) as http:
        client = ResoClient(http, base_url=reso_url, token="mls-token")
        with pytest.raises(MlsPayloadError, match="changes the scheme"):
            async for _ in client.fetch_changes_since(None):
                pass
    assert len(reso.requests) == 1
