"""The management and service commands, run as a person runs them (settings from the
environment), on SQLite and PostgreSQL: users and keys, connections, platforms, listings,
posts, and `sync all`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from conftest import ALL_BACKENDS
from mls_sync.cli import app
from mls_sync.sandbox.platforms import PlatformSandbox
from mls_sync.sandbox.reso import ResoSandbox
from mls_sync.store.crypto import TokenCipher

EMAIL = "agent@example.com"


@pytest.fixture
def cli(
    database_url: str, tmp_path: Path, platforms_url: str, monkeypatch: pytest.MonkeyPatch
) -> CliRunner:
    """`mls-sync` against a migrated, empty database, with the sandbox platforms."""
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("MLS_SYNC_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MLS_SYNC_TOKEN_KEYS", TokenCipher.generate_key())
    monkeypatch.setenv("MLS_SYNC_MLS_TIMEOUT_SECONDS", "2")
    for key, value in PlatformSandbox.settings_for(platforms_url).items():
        monkeypatch.setenv(f"MLS_SYNC_{key.upper()}", value)
    return CliRunner()


def run(cli: CliRunner, *args: str, code: int = 0, stdin: str | None = None) -> Result:
    result = cli.invoke(app, list(args), input=stdin)
    assert result.exit_code == code, (args, result.stdout, result.stderr, result.exception)
    return result


def as_json(cli: CliRunner, *args: str) -> Any:
    return json.loads(run(cli, *args, "--json").stdout)


def test_users_add_prints_the_key_once_and_a_new_key_replaces_it(cli: CliRunner) -> None:
    added = run(cli, "users", "add", EMAIL)
    key = added.stdout.strip()
    assert key.startswith("mls_") and len(key) > 40
    assert EMAIL in added.stderr

    users = as_json(cli, "users", "list")
    assert [u["email"] for u in users] == [EMAIL]
    assert key not in json.dumps(users)
    assert "exists already" in run(cli, "users", "add", EMAIL.upper(), code=1).stderr

    again = run(cli, "users", "key", EMAIL).stdout.strip()
    assert again.startswith("mls_") and again != key
    assert "No user" in run(cli, "users", "key", "nobody@example.com", code=1).stderr
    assert "not an email" in run(cli, "users", "add", "nobody", code=2).stderr


@pytest.mark.parametrize("database_url", ALL_BACKENDS, indirect=True)
def test_a_person_sets_up_a_feed_and_a_user_and_the_sync_all_command_syncs_it(
    cli: CliRunner, reso: ResoSandbox, reso_url: str, platforms: PlatformSandbox
) -> None:
    """The operator adds the MLS as a feed and loads it; the agent joins it and imports their
    listings from the local copy; a sale comes down with the next run over everyone."""
    for key, agent in [("K1", "A1"), ("K2", "A1"), ("K3", "A2")]:
        reso.add_listing(key, f"MLS-{key}", "Active", list_agent_mls_id=agent)
    platforms.add_token("facebook", "fb-secret-token")
    platforms.add_post("facebook", "555_1")
    run(cli, "users", "add", EMAIL)
    outputs: list[str] = []

    feed = as_json(cli, "feeds", "add", "--base-url", reso_url, "--token", "mls-token")
    loaded = as_json(cli, "feeds", "sync", feed["id"])
    assert loaded["success"] is True and loaded["message"].startswith("3 MLS records read")
    connection = as_json(
        cli, "connections", "add", "-u", EMAIL, "--feed", feed["id"], "--agent", "A1"
    )
    assert (connection["feed_id"], connection["shared_feed"]) == (feed["id"], True)
    imported = as_json(cli, "listings", "import", connection["id"])  # the member's own agent
    assert imported["imported"] == 2
    added = as_json(cli, "listings", "add", connection["id"], "K3")
    assert (added["mls_number"], added["status"]) == ("MLS-K3", "active")
    platform = as_json(
        cli, "platforms", "set", "-u", EMAIL, "facebook", "--access-token", "fb-secret-token"
    )
    assert platform["state"] == "active"
    k1 = next(x for x in imported["listings"] if x["listing_key"] == "K1")
    post = as_json(cli, "posts", "add", k1["id"], "facebook", "555_1")
    assert post["status"] == "published"

    reso.set_status("K1", "Closed")
    response = as_json(cli, "sync", "all")

    assert response["success"] is True
    assert (response["data"]["updatedListings"], response["data"]["unpublishedPosts"]) == (1, 1)
    posts = as_json(cli, "posts", "list", "-u", EMAIL)
    assert [(p["platform_post_id"], p["status"]) for p in posts] == [("555_1", "unpublished")]
    listings = as_json(cli, "listings", "list", "-u", EMAIL, "--status", "sold")
    assert [x["listing_key"] for x in listings] == ["K1"]
    outputs += [json.dumps(x) for x in (feed, connection, imported, platform, posts, listings)]
    outputs.append(run(cli, "feeds", "list").stdout)
    outputs.append(run(cli, "connections", "list", "-u", EMAIL).stdout)
    outputs.append(run(cli, "platforms", "list", "-u", EMAIL).stdout)
    assert not [s for s in ("mls-token", "fb-secret-token") if any(s in o for o in outputs)]


def test_importing_before_the_feeds_first_load_says_to_sync_first(
    cli: CliRunner, reso: ResoSandbox, reso_url: str
) -> None:
    """A connection with the user's own credentials (a private feed) imports from its feed's
    copy too, once the feed is loaded: before, a clear message, and nothing is imported."""
    reso.add_listing("K1", "MLS-K1", "Active", list_agent_mls_id="A1")
    run(cli, "users", "add", EMAIL)
    connection = as_json(
        cli, "connections", "add", "-u", EMAIL, "--base-url", reso_url, "--token", "mls-token"
    )
    refused = run(cli, "listings", "import", connection["id"], "--agent", "A1", code=1)
    assert "has not finished its first load yet" in refused.stderr
    assert as_json(cli, "listings", "list", "-u", EMAIL) == []

    as_json(cli, "sync", "connection", connection["id"])
    imported = as_json(cli, "listings", "import", connection["id"], "--agent", "A1")
    assert [x["listing_key"] for x in imported["listings"]] == ["K1"]


@pytest.mark.parametrize("database_url", ALL_BACKENDS, indirect=True)
def test_connections_update_and_remove(cli: CliRunner, reso_url: str) -> None:
    run(cli, "users", "add", EMAIL)
    # Without --token the token is asked for, hidden.
    added = run(
        cli, "connections", "add", "-u", EMAIL, "--base-url", reso_url, "--json", stdin="tok\n"
    )
    connection = json.loads(added.stdout[added.stdout.index("{") :])
    cid = connection["id"]

    updated = as_json(cli, "connections", "update", cid, "--name", "Main MLS", "--token", "new")
    assert updated["name"] == "Main MLS"
    refused = run(cli, "connections", "update", cid, "--auth-kind", "oauth2", code=2)
    assert "clientId: an oauth2 connection needs clientId" in refused.stderr

    run(cli, "listings", "add", cid, "K1", "--mls-number", "M1", "--status", "pending")
    run(cli, "connections", "remove", cid, "--yes")
    assert as_json(cli, "connections", "list", "-u", EMAIL) == []
    assert as_json(cli, "listings", "list", "-u", EMAIL) == []
    assert "not found" in run(cli, "connections", "remove", cid, "--yes", code=1).stderr


def test_a_member_login_is_added_with_a_hidden_password_and_renews_itself(
    cli: CliRunner, reso: ResoSandbox, reso_url: str
) -> None:
    reso.oauth.add_client("rapattoni-app", "app-secret")
    reso.oauth.add_member("M12345", "member-password")
    run(cli, "users", "add", EMAIL)
    # Without --password the password is asked for, hidden.
    added = run(
        cli,
        *("connections", "add", "-u", EMAIL, "--provider", "rapattoni", "--base-url", reso_url),
        *("--token-url", f"{reso_url}/token", "--auth-kind", "oauth2_password"),
        *("--client-id", "rapattoni-app", "--client-secret", "app-secret"),
        *("--username", "M12345", "--key-field", "ListingKey", "--json"),
        stdin="member-password\n",
    )
    assert "member-password" not in added.stdout
    connection = json.loads(added.stdout[added.stdout.index("{") :])

    synced = as_json(cli, "sync", "connection", connection["id"])

    assert synced["success"] is True
    assert reso.oauth.grants == ["password"]


def test_a_database_without_tables_says_to_run_db_upgrade(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")

    result = run(cli, "users", "list", code=1)

    assert "mls-sync db upgrade" in result.stderr
