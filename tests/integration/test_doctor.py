"""`mls-sync doctor` and `GET /api/doctor`, over real HTTP against the sandbox MLS and platforms:
one line per check (pass, warn or fail), exit 1 when any line fails, one request per MLS feed
(however many connections read it), never a secret, and a user's report holds only that user's
connections' feeds."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner, Result

from api_support import api_client, bearer, new_user
from conftest import ALL_BACKENDS
from factories import connect_platform, join, seed_connection, seed_shared_feed, seed_user
from mls_sync.api import doctor as doctor_route
from mls_sync.cli import app
from mls_sync.cli import doctor as cli_doctor
from mls_sync.config import Settings
from mls_sync.domain.status import ConnectionState
from mls_sync.domain.status import ListingStatus as S
from mls_sync.mls.errors import MLS_CONNECTION_EXPIRED
from mls_sync.runtime import Runtime, open_runtime
from mls_sync.sandbox.platforms import PlatformSandbox
from mls_sync.sandbox.reso import ResoSandbox
from mls_sync.sandbox.reso_vendors import Fault
from mls_sync.services import doctor
from mls_sync.services.doctor import Check, Status
from mls_sync.store import repositories as repo
from mls_sync.store.crypto import DEV_KEY_FILE, TokenCipher
from mls_sync.store.database import Database
from mls_sync.store.migrate import upgrade
from mls_sync.store.models import MlsFeed

# The machine's date when these were written; sunsets and expiries are judged against it, so
# the tests read the same whatever day they run.
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
EMAIL = "agent@example.com"
STATUSES = {"pass", "warn", "fail"}


@pytest.fixture
def deployment(settings: Settings, platforms_url: str, database_url: str) -> Settings:
    """The settings an operator's environment gives: this test's database, and every platform
    (Instagram's host included) at the sandbox."""
    values = settings.model_dump()
    values.update(PlatformSandbox.settings_for(platforms_url), database_url=database_url)
    return Settings.model_validate(values)


@pytest.fixture
async def runtime(deployment: Settings, db: Database) -> AsyncIterator[Runtime]:
    """The service's runtime on those settings (the conftest one keeps Instagram's real host)."""
    async with open_runtime(deployment, db=db) as opened:
        yield opened


@pytest.fixture
def cli(
    deployment: Settings, platforms_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> CliRunner:
    """`mls-sync` as an operator runs it: settings from the environment, the clock at NOW."""
    monkeypatch.chdir(tmp_path)  # no stray .env
    assert deployment.database_url is not None and deployment.token_keys is not None
    monkeypatch.setenv("DATABASE_URL", deployment.database_url)
    monkeypatch.setenv("MLS_SYNC_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MLS_SYNC_TOKEN_KEYS", deployment.token_keys.get_secret_value())
    monkeypatch.setenv("MLS_SYNC_MLS_TIMEOUT_SECONDS", "2")
    for key, value in PlatformSandbox.settings_for(platforms_url).items():
        monkeypatch.setenv(f"MLS_SYNC_{key.upper()}", value)
    monkeypatch.setattr(cli_doctor, "clock", lambda: NOW)
    return CliRunner()


def run(cli: CliRunner, *args: str, code: int = 0) -> Result:
    result = cli.invoke(app, list(args))
    assert result.exit_code == code, (args, result.stdout, result.stderr, result.exception)
    return result


def report(cli: CliRunner, *args: str, code: int = 0) -> dict[str, Any]:
    return json.loads(run(cli, "doctor", "--json", *args, code=code).stdout)


def lines(checks: list[Check] | dict[str, Any]) -> dict[str, tuple[str, str]]:
    """name -> (status, detail), from the service's checks or the JSON report."""
    if isinstance(checks, dict):
        return {c["name"]: (c["status"], c["detail"]) for c in checks["checks"]}
    return {c.name: (c.status.value, c.detail) for c in checks}


async def diagnose(settings: Settings, *, now: datetime = NOW, user: str | None = None) -> Any:
    return lines(await doctor.diagnose_deployment(lambda: settings, now=now, user=user))


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


# the operator's command, end to end


@pytest.mark.parametrize("database_url", ALL_BACKENDS, indirect=True)
def test_a_healthy_deployment_passes_every_check_and_exits_0(
    cli: CliRunner, reso: ResoSandbox, reso_url: str, platforms: PlatformSandbox
) -> None:
    run(cli, "users", "add", EMAIL)
    run(cli, "connections", "add", "-u", EMAIL, "--base-url", reso_url, "--token", "mls-token")
    platforms.add_token("linkedin", "li-secret-access", refresh_token="li-secret-refresh")
    run(
        cli, "platforms", "set", "-u", EMAIL, "linkedin", "--access-token", "li-secret-access",
        "--refresh-token", "li-secret-refresh", "--expires-at", "2027-01-01T00:00:00+00:00",
    )  # fmt: skip
    asked = reso.request_count

    table = run(cli, "doctor")
    as_json = report(cli)

    # Exactly one MLS request per connection and run: MLS budgets are not spent on a check.
    assert reso.request_count - asked == 2
    assert as_json["ok"] is True
    found = lines(as_json)
    assert {status for status, _ in found.values()} == {"pass"}, found
    assert {"settings", "database", "token key", "stored secrets"} <= set(found)
    assert {"LinkedIn API version", "Facebook API version", "Instagram API version"} <= set(found)
    assert found[f"MLS 127.0.0.1 ({EMAIL})"][1] == "127.0.0.1 answered with its credentials"
    assert f"All {len(found)} checks passed." in table.stdout
    # The operator's probes go without any user's token.
    probes = [r for r in platforms.requests if r.platform == "linkedin"]
    assert probes and not [r for r in probes if "authorization" in r.headers]
    output = table.stdout + table.stderr + json.dumps(as_json)
    assert not [s for s in ("mls-token", "li-secret-access", "li-secret-refresh") if s in output]


def test_a_retired_linkedin_version_fails_naming_the_setting_and_exits_1(
    cli: CliRunner, platforms: PlatformSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLS_SYNC_LINKEDIN_API_VERSION", "202411")

    found = lines(report(cli, code=1))

    status, detail = found["LinkedIn API version"]
    assert status == "fail"
    assert "202411" in detail and "MLS_SYNC_LINKEDIN_API_VERSION" in detail
    assert found["Facebook API version"][0] == "pass"
    # The platform was asked, with the version we send, and refused it.
    sent = [
        r.headers.get("linkedin-version") for r in platforms.requests if r.platform == "linkedin"
    ]
    assert sent == ["202411"]
    assert "MLS_SYNC_LINKEDIN_API_VERSION" in run(cli, "doctor", code=1).stdout


def test_json_prints_only_the_report(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")

    result = run(cli, "doctor", "--json", code=1)

    body = json.loads(result.stdout)  # the whole of stdout is the JSON
    assert set(body) == {"ok", "checks"}
    assert body["ok"] is False
    for check in body["checks"]:
        assert set(check) == {"name", "status", "detail"}
        assert check["status"] in STATUSES and check["detail"]


def test_a_database_without_tables_fails_and_skips_what_needs_it(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")

    found = lines(report(cli, code=1))

    status, detail = found["database"]
    assert status == "fail" and "no tables yet: run `mls-sync db upgrade`" in detail
    assert not [name for name in found if name.startswith(("MLS", "stored", "platform"))]
    assert found["LinkedIn API version"][0] == "pass"  # what needs no database still runs


def test_a_database_behind_the_code_fails_with_both_revisions(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "old.db"
    old = Database(f"sqlite:///{path}")
    asyncio.run(_upgrade_to(old, "0003"))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{path}")

    status, detail = lines(report(cli, code=1))["database"]

    head = doctor.head_revision()
    assert status == "fail"
    assert f"at revision 0003, this version needs {head}: run `mls-sync db upgrade`" in detail


async def _upgrade_to(db: Database, revision: str) -> None:
    try:
        await upgrade(db, revision)
    finally:
        await db.dispose()


def test_invalid_settings_are_one_failed_line_not_a_traceback(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLS_SYNC_ENVIRONMENT", "production")
    monkeypatch.delenv("MLS_SYNC_TOKEN_KEYS")

    result = run(cli, "doctor", code=1)
    body = report(cli, code=1)

    assert isinstance(result.exception, SystemExit)  # typer.Exit, not an error
    assert "Traceback" not in result.stdout + result.stderr
    assert [c["name"] for c in body["checks"]] == ["settings"]
    assert "MLS_SYNC_TOKEN_KEYS must be set in production" in body["checks"][0]["detail"]


def test_without_a_token_key_development_warns_and_the_doctor_creates_none(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLS_SYNC_TOKEN_KEYS")

    status, detail = lines(report(cli))["token key"]

    assert status == "warn" and "MLS_SYNC_TOKEN_KEYS" in detail
    assert not (tmp_path / DEV_KEY_FILE).exists()


def test_user_limits_the_connection_checks_to_that_user(cli: CliRunner, reso_url: str) -> None:
    for email, token in [(EMAIL, "mls-token"), ("other@example.com", "other-token")]:
        run(cli, "users", "add", email)
        run(cli, "connections", "add", "-u", email, "--base-url", reso_url, "--token", token)

    everyone = lines(report(cli, code=1))  # the other user's token is unknown to the MLS
    mine = lines(report(cli, "--user", EMAIL))
    nobody = lines(report(cli, "--user", "nobody@example.com", code=1))

    assert everyone["MLS 127.0.0.1 (other@example.com)"][0] == "fail"
    assert [n for n in mine if n.startswith("MLS")] == [f"MLS 127.0.0.1 ({EMAIL})"]
    assert nobody["user"] == ("fail", "no user 'nobody@example.com'")


# the checks, through the service with an injected clock


async def test_an_mls_connection_with_a_bad_secret_fails_only_its_own_line(
    runtime: Runtime, deployment: Settings, reso: ResoSandbox, reso_url: str
) -> None:
    user = await seed_user(runtime)
    good = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE}, user_id=user)
    stale = await seed_connection(
        runtime, reso, reso_url, {}, user_id=user, token="stale-secret-token"
    )
    async with runtime.db.transaction() as session:
        await repo.create_mls_connection(
            session,
            runtime.cipher,
            user_id=user,
            base_url=closed_port_url(),
            token="t",
            name="Down MLS",
        )
        # A line names the feed it asked (a private feed is named after its connection).
        named = await repo.get_feed(session, good.feed_id)
        assert named is not None
        named.name = "Main MLS"
    asked = reso.request_count

    found = await diagnose(deployment)

    assert found[f"MLS Main MLS ({EMAIL})"] == ("pass", "127.0.0.1 answered with its credentials")
    stale_line = found[f"MLS 127.0.0.1 ({EMAIL})"]
    assert stale_line == ("fail", f"{MLS_CONNECTION_EXPIRED} [connection {stale.connection_id}]")
    status, detail = found[f"MLS Down MLS ({EMAIL})"]
    assert status == "fail" and "Network error" in detail
    assert reso.request_count - asked == 2  # one each; the one that is down was tried once
    assert "stale-secret-token" not in json.dumps(found)
    # The doctor reports; it does not mark the feed or its connection expired (a sync does).
    async with runtime.db.transaction() as session:
        kept = await repo.get_mls_connection(session, stale.connection_id)
        kept_feed = await repo.get_feed(session, stale.feed_id)
    assert kept is not None and kept.state == ConnectionState.ACTIVE
    assert kept_feed is not None and kept_feed.state == ConnectionState.ACTIVE


async def test_a_feed_known_to_be_expired_fails_without_asking_the_mls(
    runtime: Runtime, deployment: Settings, reso: ResoSandbox, reso_url: str
) -> None:
    seeded = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE})
    async with runtime.db.transaction() as session:
        await repo.mark_feed(session, seeded.feed_id, ConnectionState.EXPIRED, "401")
    asked = reso.request_count

    status, detail = (await diagnose(deployment))[f"MLS 127.0.0.1 ({EMAIL})"]

    assert (status, detail) == (
        "fail",
        f"{MLS_CONNECTION_EXPIRED} (not asked: marked expired) [connection {seeded.connection_id}]",
    )
    assert reso.request_count == asked


async def test_a_probe_the_vendor_answers_with_a_suspension_records_it_for_every_run(
    runtime: Runtime, deployment: Settings, reso: ResoSandbox, reso_url: str
) -> None:
    seeded = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE})
    reso.fail_next.append(Fault(429, headers={"Retry-After": "3600"}))  # rest an hour

    status, detail = (await diagnose(deployment))[f"MLS 127.0.0.1 ({EMAIL})"]

    assert status == "fail" and "suspended this credential" in detail
    async with runtime.db.transaction() as session:
        feed = await session.get(MlsFeed, seeded.feed_id)
    assert feed is not None and feed.suspended_until is not None
    assert feed.suspended_until > datetime.now(UTC) + timedelta(minutes=59)
    asked = reso.request_count
    again = await runtime.engine.sync_feed(seeded.feed_id)  # the next run does not ask
    assert again.failure is not None and reso.request_count == asked


async def test_a_shared_feed_is_asked_once_however_many_connections_read_it(
    runtime: Runtime, deployment: Settings, reso: ResoSandbox, reso_url: str
) -> None:
    shared = await seed_shared_feed(runtime, reso_url, token="mls-token", name="Shared MLS")
    spare = await seed_shared_feed(runtime, reso_url, token="unknown-token", name="Spare MLS")
    await join(runtime, shared, email=EMAIL)
    await join(runtime, shared, email="other@example.com")
    asked = reso.request_count

    everyone = await diagnose(deployment)
    asked_for_everyone = reso.request_count - asked
    mine = await diagnose(deployment, user=EMAIL)

    assert everyone["MLS Shared MLS (shared)"] == (
        "pass",
        "127.0.0.1 answered with its credentials",
    )
    # The operator's report holds every feed, members or not; a failing shared feed is named
    # by its id (the connections reading it are many).
    assert everyone["MLS Spare MLS (shared)"] == (
        "fail",
        f"{MLS_CONNECTION_EXPIRED} [feed {spare}]",
    )
    assert asked_for_everyone == 2  # one per feed, not one per connection
    assert [n for n in mine if n.startswith("MLS")] == ["MLS Shared MLS (shared)"]
    assert reso.request_count - asked == 3


async def test_a_token_expiring_in_3_days_warns_with_its_date(
    runtime: Runtime, deployment: Settings, platforms: PlatformSandbox
) -> None:
    user = await seed_user(runtime)
    # A LinkedIn member token without a refresh token (apps not approved for them) cannot be
    # renewed; an Instagram Login token extends itself, so the token care keeps it alive.
    await connect_platform(
        runtime, platforms, user, "linkedin", refresh=False, expires_at=NOW + timedelta(days=3)
    )
    await connect_platform(
        runtime, platforms, user, "instagram", refresh=False, expires_at=NOW + timedelta(days=3)
    )
    # A refresh token renews this one, however soon its access token runs out.
    await connect_platform(runtime, platforms, user, "pinterest", expires_at=NOW + timedelta(1))
    await connect_platform(
        runtime, platforms, user, "x", refresh=False, expires_at=NOW - timedelta(hours=1)
    )
    await connect_platform(runtime, platforms, user, "facebook", refresh=False)
    async with runtime.db.transaction() as session:
        facebook = await session.platforms.get(user, "facebook")
        assert facebook is not None
        facebook.state = ConnectionState.EXPIRED
        facebook.state_message = "Facebook rejected the access token"

    found = await diagnose(deployment)
    ten_days_earlier = await diagnose(deployment, now=NOW - timedelta(days=10))

    assert found[f"LinkedIn token ({EMAIL})"] == (
        "warn",
        "expires on 2026-12-04T12:00+00:00 (in 3.0 days) and cannot be refreshed: "
        "reconnect LinkedIn before then",
    )
    assert f"Instagram token ({EMAIL})" not in found
    assert found[f"X token ({EMAIL})"] == ("fail", "expired on 2026-12-01T11:00+00:00: reconnect X")
    assert found[f"Facebook token ({EMAIL})"] == (
        "fail",
        "expired (Facebook rejected the access token): reconnect Facebook",
    )
    assert f"Pinterest token ({EMAIL})" not in found
    # Ten days earlier the same LinkedIn token is outside the 7-day window.
    assert f"LinkedIn token ({EMAIL})" not in ten_days_earlier
    assert f"X token ({EMAIL})" not in ten_days_earlier


async def test_a_rotated_away_token_key_fails_with_a_clear_message(
    runtime: Runtime, deployment: Settings, reso: ResoSandbox, reso_url: str
) -> None:
    await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE})
    old = deployment.token_keys
    assert old is not None
    new = TokenCipher.generate_key()
    rotated_away = deployment.model_copy(update={"token_keys": SecretStr(new)})
    both = deployment.model_copy(
        update={"token_keys": SecretStr(f"{new},{old.get_secret_value()}")}
    )

    broken = await diagnose(rotated_away)
    fixed = await diagnose(both)

    status, detail = broken["stored secrets"]
    assert status == "fail"
    assert "1 of 1 stored secret cannot be decrypted" in detail and "rotated away" in detail
    assert "mls-sync keys rotate" in detail
    status, detail = broken[f"MLS 127.0.0.1 ({EMAIL})"]
    assert status == "fail" and "cannot be decrypted" in detail
    assert fixed["stored secrets"] == ("pass", "the token keys decrypt all 1 stored secret")
    assert fixed[f"MLS 127.0.0.1 ({EMAIL})"][0] == "pass"


async def test_a_version_the_platform_refuses_fails_before_its_published_sunset(
    deployment: Settings, platforms: PlatformSandbox
) -> None:
    platforms.retire_version("facebook", deployment.facebook_api_version)

    status, detail = (await diagnose(deployment))["Facebook API version"]

    assert status == "fail"
    assert "MLS_SYNC_FACEBOOK_API_VERSION" in detail


async def test_a_version_within_30_days_of_its_sunset_warns(deployment: Settings) -> None:
    old = deployment.model_copy(update={"facebook_api_version": "v21.0"})

    now = await diagnose(old)
    later = await diagnose(old, now=datetime(2027, 1, 1, tzinfo=UTC))
    after = await diagnose(old, now=datetime(2027, 1, 21, tzinfo=UTC))

    assert now["Facebook API version"] == (
        "pass",
        "v21.0 accepted by Facebook (served until 2027-01-21)",
    )
    assert later["Facebook API version"] == (
        "warn",
        "v21.0 is retired on 2027-01-21, in 20 days: set MLS_SYNC_FACEBOOK_API_VERSION to a "
        "newer version before then",
    )
    status, detail = after["Facebook API version"]
    assert status == "fail" and "was retired on 2027-01-21" in detail


async def test_a_platform_that_cannot_be_asked_warns(deployment: Settings) -> None:
    unreachable = deployment.model_copy(update={"linkedin_api_url": closed_port_url()})

    status, detail = (await diagnose(unreachable))["LinkedIn API version"]

    assert status == "warn"
    assert "LinkedIn could not be asked (Network error" in detail


# the user's own report over the API


async def test_get_api_doctor_reports_only_the_callers_connections(
    runtime: Runtime,
    reso: ResoSandbox,
    reso_url: str,
    platforms: PlatformSandbox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(doctor_route, "clock", lambda: NOW)
    alice, alice_key = await new_user(runtime, "alice@example.com")
    bob, bob_key = await new_user(runtime, "bob@example.com")
    mine = await seed_connection(runtime, reso, reso_url, {"A1": S.ACTIVE}, user_id=alice)
    theirs = await seed_connection(
        runtime, reso, reso_url, {}, user_id=bob, token="bob-stale-token"
    )
    alice_token, _ = await connect_platform(runtime, platforms, alice, "linkedin")
    bob_token, _ = await connect_platform(
        runtime, platforms, bob, "instagram", refresh=False, expires_at=NOW + timedelta(days=2)
    )
    asked = reso.request_count

    async with api_client(runtime) as api:
        unauthenticated = await api.get("/api/doctor")
        as_alice = await api.get("/api/doctor", headers=bearer(alice_key))
        as_bob = await api.get("/api/doctor", headers=bearer(bob_key))

    assert unauthenticated.status_code == 401
    assert (as_alice.status_code, as_bob.status_code) == (200, 200)  # whatever the outcome
    alice_body, bob_body = as_alice.json(), as_bob.json()
    assert set(alice_body) == {"ok", "checks"}
    assert (alice_body["ok"], bob_body["ok"]) == (True, False)
    alice_lines = lines(alice_body)
    assert alice_lines["MLS 127.0.0.1 (alice@example.com)"][0] == "pass"
    assert {s for s, _ in alice_lines.values()} == {"pass"}, alice_lines
    # The operator's lines (files, revisions, keys) are not a user's business.
    assert not {"settings", "database", "token key"} & set(alice_lines)
    text = as_alice.text
    for other in ("bob@example.com", theirs.connection_id, bob, "bob-stale-token", bob_token):
        assert other not in text
    assert mine.connection_id not in as_bob.text and "alice@example.com" not in as_bob.text
    assert lines(bob_body)["MLS 127.0.0.1 (bob@example.com)"][0] == "fail"
    assert reso.request_count - asked == 2  # one per caller's connection
    # The LinkedIn probe spoke with Alice's own token; Bob has none, so his went without.
    sent = [r.headers.get("authorization") for r in platforms.requests if r.platform == "linkedin"]
    assert sorted(sent, key=str) == sorted([f"Bearer {alice_token}", None], key=str)
    assert alice_token not in text


async def test_get_api_doctor_uses_the_injected_clock(
    runtime: Runtime, platforms: PlatformSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    user, key = await new_user(runtime)
    await connect_platform(
        runtime, platforms, user, "linkedin", refresh=False, expires_at=NOW + timedelta(days=3)
    )
    monkeypatch.setattr(doctor_route, "clock", lambda: NOW)

    async with api_client(runtime) as api:
        body = (await api.get("/api/doctor", headers=bearer(key))).json()

    status, detail = lines(body)[f"LinkedIn token ({EMAIL})"]
    assert status == "warn" and "2026-12-04T12:00+00:00" in detail
    assert body["ok"] is True  # a warning is not a failure


def test_every_status_renders_in_the_table() -> None:
    checks = [
        Check("a", Status.PASS, "fine"),
        Check("b", Status.WARN, "soon [see docs]"),
        Check("c", Status.FAIL, "broken"),
    ]
    from rich.console import Console

    console = Console(width=120, record=True)
    console.print(cli_doctor.render(checks))
    text = console.export_text()
    assert "soon [see docs]" in text  # server text is shown as it is, not read as markup
    assert all(word in text for word in STATUSES)
    assert doctor.report(checks)["ok"] is False
