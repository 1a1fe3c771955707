"""`DATABASE_URL=dynamodb://PREFIX?...` from a person's side: `mls-sync db upgrade` creates the
tables (and leaves them be when run again), a command before that says to run it, and what
needs SQL says so in one line. Against moto's local DynamoDB server."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from mls_sync.cli import app
from mls_sync.store.crypto import TokenCipher

pytestmark = pytest.mark.dynamodb


@pytest.fixture
def prefix() -> str:
    return f"cli{uuid.uuid4().hex[:10]}"


@pytest.fixture
def cli(
    dynamodb_endpoint: str, prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> CliRunner:
    """`mls-sync` on DynamoDB tables that do not exist yet."""
    monkeypatch.chdir(tmp_path)  # no stray .env
    url = f"dynamodb://{prefix}?region=us-east-1&endpoint_url={dynamodb_endpoint}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("MLS_SYNC_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MLS_SYNC_TOKEN_KEYS", TokenCipher.generate_key())
    return CliRunner()


def run(cli: CliRunner, *args: str, code: int = 0) -> Result:
    result = cli.invoke(app, list(args))
    assert result.exit_code == code, (args, result.stdout, result.stderr, result.exception)
    return result


def test_db_upgrade_creates_the_tables_once_and_the_commands_then_work(
    cli: CliRunner, prefix: str, tmp_path: Path
) -> None:
    before = run(cli, "users", "list", code=1)
    assert "run `mls-sync db upgrade` first" in before.stderr
    assert f"{prefix}-data" in before.stderr

    first = run(cli, "db", "upgrade")
    second = run(cli, "db", "upgrade")

    assert f"done now: {prefix}-data, {prefix}-coordination" in first.stderr
    assert "done now: nothing" in second.stderr
    key = run(cli, "users", "add", "agent@example.com").stdout.strip()
    assert key.startswith("mls_")
    assert "agent@example.com" in run(cli, "users", "list").stdout
    assert "exists already" in run(cli, "users", "add", "agent@example.com", code=1).stderr
    assert not list(tmp_path.glob("*.db"))  # nothing went to a SQLite file


def test_what_needs_sql_refuses_in_one_line(cli: CliRunner) -> None:
    run(cli, "db", "upgrade")

    refused = run(cli, "keys", "rotate", code=1)

    assert "mls-sync keys rotate needs DATABASE_URL on SQLite or PostgreSQL" in refused.stderr
    assert "Traceback" not in refused.stderr


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("dynamodb://bad prefix?region=us-east-1", "table prefix"),
        ("dynamodb://ok?regoin=us-east-1", "unknown DynamoDB URL option(s) regoin"),
        ("dynamodb://ok?endpoint_url=localhost:8000", "endpoint_url must be an http(s) URL"),
    ],
)
def test_a_bad_dynamodb_url_is_one_clear_configuration_error(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch, url: str, says: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", url)

    refused = run(cli, "users", "list", code=2)

    assert "Invalid configuration" in refused.stderr
    assert says in refused.stderr


async def test_the_dashboard_page_refuses_on_dynamodb_with_the_reason(dynamodb_url: str) -> None:
    from mls_sync.services.dashboard import dashboard_data
    from mls_sync.store.open import SqlOnlyError, open_database

    db = open_database(dynamodb_url)
    try:
        with pytest.raises(SqlOnlyError, match="The dashboard page needs DATABASE_URL on SQLite"):
            async with db.transaction() as session:
                await dashboard_data(session, "any-user")  # type: ignore[arg-type]
    finally:
        await db.dispose()
