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
from pathlib import Path

import httpx
import pytest
import structlog
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api_support import api_client, bearer, new_user
from factories import seed_connection, seed_user
from mls_sync.config import Settings
from mls_sync.domain.errors import InvalidInput
from mls_sync.domain.status import ListingStatus
from mls_sync.egress import EgressPolicy, EgressRefused, EgressTransport, system_resolver
from mls_sync.mls.auth import OAuth2ClientCredentials, StaticBearer, TokenCache
from mls_sync.mls.client import ResoClient
from mls_sync.mls.errors import (
    EGRESS_REFUSED,
    MLS_CONNECTION_EXPIRED,
    NETWORK_TIMEOUT,
    MlsBudgetExhausted,
    MlsPayloadError,
    MlsRequestError,
)
from mls_sync.mls.limits import RateBudgets, RequestBudget
from mls_sync.mls.profiles import PROFILES
from mls_sync.mls.transport import REMOTE_TEXT_LIMIT, MlsTransport, odata_message
from mls_sync.observability.logs import configure_logging
from mls_sync.observability.redact import REDACTED, SECRETS
from mls_sync.runtime import Runtime, open_runtime
from mls_sync.sandbox.reso import ResoSandbox
from mls_sync.sandbox.reso_vendors import Fault
from mls_sync.sandbox.server import BackgroundServer
from mls_sync.services.feeds import FeedSettings, MlsCredentials, add_feed
from mls_sync.store import repositories as repo
from mls_sync.store.crypto import TokenCipher
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
    runtime: Runtime,
    mls: ResoSandbox,
    base_url: str,
    token_url: str,
    secret: str,
    *,
    client_id: str = A_CLIENT,
    user_id: str | None = None,
) -> str:
    """A connection (a private feed, a new user's unless given) holding K1, with an OAuth2
    client: A's client id unless another is given."""
    mls.add_listing("K1", "MLS-K1", "Active")
    user_id = user_id or await seed_user(runtime, f"{uuid.uuid4().hex[:12]}@example.com")
    async with runtime.db.transaction() as session:
        connection = await repo.create_mls_connection(
            session,
            runtime.cipher,
            user_id=user_id,
            base_url=base_url,
            token=None,
            auth_kind="oauth2",
            credentials={"client_id": client_id, "client_secret": secret},
            profile_overrides={"token_url": token_url},
        )
        await repo.add_listing(session, connection=connection, listing_key="K1", mls_number="M1")
    return connection.id


async def _bearer_connection(runtime: Runtime, mls: ResoSandbox, base_url: str) -> str:
    seeded = await seed_connection(runtime, mls, base_url, {"K1": ListingStatus.ACTIVE})
    return seeded.connection_id


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
        token_url = f"{token_server.url}/token"
        oauth = await _oauth_connection(
            runtime, reso, reso_url, token_url, secret, client_id="hostile", user_id=user_id
        )
        seeded = await seed_connection(runtime, reso, reso_url, {}, user_id=user_id)
        reso.fail_next.append(
            Fault(status=200, body={"value": []}, headers={"Hour-Quota-Limit": "inf"})
        )
        async with api_client(runtime) as api:
            answers = [
                await api.post(f"/api/mls-connections/{c}/sync", headers=bearer(key))
                for c in (seeded.connection_id, oauth)
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


def _policy(
    allow: str = "", *, loopback: bool = False, https_only: bool = False, **names: list[str]
) -> EgressPolicy:
    """A policy over a resolver that knows `names` (host -> addresses); literal addresses and
    their other spellings go to the system's resolver (no network needed)."""
    known = {host.replace("_", "."): addresses for host, addresses in names.items()}

    async def resolve(host: str, port: int) -> list[str]:
        if host in known:
            return known[host]
        return list(await system_resolver(host, port))

    return EgressPolicy.parse(
        allow, allow_loopback=loopback, https_only=https_only, resolver=resolve
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:6379/",  # Redis on loopback
        "http://localhost:5432/",
        "http://[::1]/",
        "http://2130706433/",  # 127.0.0.1 as one integer
        "http://0177.0.0.1/",  # and in octal
        "http://0.0.0.0/",
        "http://10.1.2.3/",
        "http://172.16.0.9/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data/",  # the cloud's metadata service
        "http://100.64.0.1/",  # carrier-grade NAT
        "http://224.0.0.1/",  # multicast
        "http://[::ffff:127.0.0.1]/",  # IPv4-mapped loopback
        "http://[fd00::1]/",
        "http://[fe80::1]/",
        "http://intranet.test/",  # a name that resolves to a private address
        "http://rebind.test/",  # a public and a private answer: refused whole
        "ftp://mls.example/",
    ],
)
async def test_loopback_private_and_odd_destinations_are_refused(url: str) -> None:
    policy = _policy(intranet_test=["10.0.0.7"], rebind_test=["93.184.216.34", "127.0.0.1"])
    with pytest.raises(EgressRefused):
        await policy.check_url(url)


async def test_the_operator_allows_hosts_ports_and_networks_by_name_and_https_in_production() -> (
    None
):
    policy = _policy(
        "mls.internal, 10.9.0.0/16, 127.0.0.1:8080",
        mls_internal=["10.0.0.7"],
        vpc_mls=["10.9.3.4"],
        public_mls=["93.184.216.34"],
    )
    for allowed in (
        "https://public.mls/odata",
        "http://mls.internal/odata",
        "http://vpc.mls/odata",
        "http://127.0.0.1:8080/odata",
    ):
        await policy.check_url(allowed)
    with pytest.raises(EgressRefused):
        await policy.check_url("http://127.0.0.1:8081/odata")  # another port
    production = _policy(https_only=True, public_mls=["93.184.216.34"])
    await production.check_url("https://public.mls/odata")
    with pytest.raises(EgressRefused, match="only https"):
        await production.check_url("http://public.mls/odata")
    with pytest.raises(ValueError, match="not a network"):
        EgressPolicy.parse("10.0.0.0/99", allow_loopback=False, https_only=False)
    with pytest.raises(ValidationError, match="EGRESS_ALLOW"):
        Settings(egress_allow="mls.test:99999")


async def test_a_user_cannot_save_an_mls_url_the_policy_refuses(
    settings: Settings, db: Database
) -> None:
    """A base URL or token URL on loopback, the private network or the metadata service is a
    422 naming the field, nothing saved; the service connected to none of them."""
    strict = settings.model_copy(update={"egress_allow_loopback": False})
    async with open_runtime(strict, db=db) as runtime:
        _, key = await new_user(runtime, "b@example.com")
        bodies = {
            "baseUrl": {"baseUrl": "http://127.0.0.1:6379/", "token": "b-token-0123"},
            "tokenUrl": {
                "baseUrl": "https://93.184.216.34/odata",  # public: passes, not connected
                "authKind": "oauth2",
                "clientId": "b",
                "clientSecret": "b-secret-0123",
                "tokenUrl": "http://169.254.169.254/token",
            },
        }
        async with api_client(runtime) as api:
            for field, body in bodies.items():
                answer = await api.post("/api/mls-connections", json=body, headers=bearer(key))
                assert answer.status_code == 422, answer.text
                [error] = answer.json()["detail"]
                assert error["loc"][-1] == field
                assert error["msg"].startswith(EGRESS_REFUSED)
            assert (await api.get("/api/mls-connections", headers=bearer(key))).json() == []


async def test_every_request_is_checked_so_a_stored_or_rebound_host_is_refused(
    settings: Settings, db: Database, reso: ResoSandbox, reso_url: str
) -> None:
    """The policy holds at each request, not only when a URL is saved: a host that resolved
    to an allowed address and now resolves to a private one is refused before connecting,
    and a connection stored while loopback was allowed stops reaching it."""
    port = int(reso_url.rsplit(":", 1)[1])
    answers = {"mls.rebind.test": ["127.0.0.1"]}

    async def resolve(host: str, _port: int) -> list[str]:
        return answers[host]

    policy = EgressPolicy.parse(
        "127.0.0.1/32", allow_loopback=False, https_only=False, resolver=resolve
    )
    async with httpx.AsyncClient(
        timeout=2.0, transport=EgressTransport(policy, httpx.AsyncHTTPTransport())
    ) as http:
        client = ResoClient(http, base_url=f"http://mls.rebind.test:{port}", token="mls-token")
        reso.add_listing("K1", "MLS-1", "Active")
        assert "K1" in await client.fetch_by_keys(["K1"])  # sent to the address it checked
        assert reso.requests[-1].headers["host"] == f"mls.rebind.test:{port}"
        answers["mls.rebind.test"] = ["10.0.0.5"]  # the name now points inside
        with pytest.raises(MlsRequestError, match=EGRESS_REFUSED):
            await client.fetch_by_keys(["K1"])
    assert len(reso.requests) == 1

    strict = settings.model_copy(update={"egress_allow_loopback": False})
    async with open_runtime(strict, db=db) as runtime:
        connection_id = await _bearer_connection(runtime, reso, reso_url)  # saved directly
        outcome = await runtime.engine.sync_connection(connection_id)
    assert not outcome.success and EGRESS_REFUSED in outcome.message
    assert len(reso.requests) == 1  # the sandbox on loopback heard nothing more


def test_remote_error_text_reaches_users_as_a_short_plain_summary() -> None:
    body = {"error": {"code": 1550, "message": "Over\x00 rate\n\nlimit " + "x" * 500}}
    response = httpx.Response(429, json=body)
    said = odata_message(response)
    assert said.startswith(": code 1550 Over rate limit xxx")
    assert len(said) <= len(": code 1550 ") + REMOTE_TEXT_LIMIT + 1
    assert "\x00" not in said and "\n" not in said


# 5. the low ones


async def test_a_before_cursor_that_is_no_instant_in_utc_is_422_not_500(runtime: Runtime) -> None:
    _, key = await new_user(runtime, "b@example.com")
    async with api_client(runtime) as api:
        odd = await api.get(
            "/api/sync-runs",
            params={"before": "0001-01-01T00:00:00+14:00"},  # before year 1, in UTC
            headers=bearer(key),
        )
        fine = await api.get(
            "/api/sync-runs", params={"before": "9999-12-31T10:00:00-01:00"}, headers=bearer(key)
        )
    assert odd.status_code == 422, odd.text
    assert odd.json()["detail"][0]["loc"] == ["query", "before"]
    assert fine.status_code == 200


def test_production_refuses_a_cron_secret_shorter_than_32_characters(tmp_path: Path) -> None:
    production = {
        "environment": "production",
        "token_keys": TokenCipher.generate_key(),
        "data_dir": tmp_path,
    }
    with pytest.raises(ValidationError, match="at least 32 characters"):
        Settings(**production, cron_secret="x")
    assert Settings(**production, cron_secret="x" * 32).cron_secret is not None
    assert Settings(environment="development", cron_secret="x").cron_secret is not None


async def test_metrics_name_the_vendor_profile_never_a_users_mls_host(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    connection_id = await _bearer_connection(runtime, reso, reso_url)
    assert (await runtime.engine.sync_connection(connection_id)).success
    async with api_client(runtime) as api:
        text = (await api.get("/metrics")).text
    assert 'mls_sync_mls_requests_total{profile="generic"}' in text
    assert reso_url.removeprefix("http://") not in text
